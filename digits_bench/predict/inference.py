"""Inference on digit images, whatever reads them (predict, predict-eval, ensembles): a run's network in the form
MLflow logs it (`DigitsNet`: raw pixels in), built from its config and checkpoint, and its class probabilities,
optionally averaged over one-pixel shifts."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from digits_bench.errors import ModelLoadError
from digits_bench.models.digits_net import DigitsNet

SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # (dx, dy) in pixels


def shifted(images: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """uint8 (N, 28, 28) moved by (dx, dy) pixels, the uncovered border filled with background (0)."""
    h, w = images.shape[-2:]
    padded = F.pad(images, (1, 1, 1, 1))
    return padded[:, 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]


def load_net(cfg: DictConfig, checkpoint: Path) -> DigitsNet:
    """The run's network (built from its config's model, normalised by its data's statistics) with the checkpoint's
    weights, read as tensors, in eval mode on the CPU; nothing of training (optimizer, schedule, metrics) is built."""
    from hydra.utils import instantiate

    from digits_bench.training.checkpoint_io import load_tensors

    try:
        net = instantiate(cfg.model, num_classes=cfg.data.get("num_classes", 10))
    except Exception as err:  # hydra instantiation of a config from another version of the code
        raise ModelLoadError(f"cannot build model {cfg.model.get('name', '?')} from its config ({str(err).splitlines()[0]})") from None
    state = load_tensors(checkpoint).get("state_dict")
    if not isinstance(state, dict):
        raise ModelLoadError(f"{checkpoint.name} is not a Lightning checkpoint (no state_dict)")
    weights = {key.removeprefix("net.").replace("_orig_mod.", ""): value for key, value in state.items()
               if key.startswith("net.")}  # the training module's net (trained with compile=true: its _orig_mod)
    try:
        net.load_state_dict(weights)
    except RuntimeError:
        raise ModelLoadError(f"{checkpoint.name} does not hold weights of model {cfg.model.name} as configured") from None
    return DigitsNet(net, cfg.data.mean, cfg.data.std).eval()


@torch.no_grad()
def probabilities(module: torch.nn.Module, images: torch.Tensor, tta: bool, batch_size: int = 1000) -> torch.Tensor:
    """Softmax over classes of a network taking raw pixels (a `DigitsNet`), averaged over the shifted views when
    `tta` (test-time augmentation: ensembles, and predict --tta); (N, classes) on the CPU."""
    views = SHIFTS if tta else SHIFTS[:1]
    device = next(module.parameters()).device
    out = []
    for batch in images.split(batch_size):
        batch = batch.to(device)
        probs = sum(module(shifted(batch, dx, dy)).float().softmax(dim=1) for dx, dy in views)
        out.append((probs / len(views)).cpu())
    return torch.cat(out)

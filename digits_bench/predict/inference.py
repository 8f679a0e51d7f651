"""Inference on digit images, whatever reads them (predict, predict-eval, ensembles): class probabilities of a
module with `preprocess` (a run's network, or an MLflow Model's), optionally averaged over one-pixel shifts."""
from __future__ import annotations

import torch
import torch.nn.functional as F

SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # (dx, dy) in pixels


def shifted(images: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """uint8 (N, 28, 28) moved by (dx, dy) pixels, the uncovered border filled with background (0)."""
    h, w = images.shape[-2:]
    padded = F.pad(images, (1, 1, 1, 1))
    return padded[:, 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]


@torch.no_grad()
def probabilities(module: torch.nn.Module, images: torch.Tensor, tta: bool, batch_size: int = 1000) -> torch.Tensor:
    """Softmax over classes of a module with `preprocess` (a run's, or an MLflow Model's), averaged over the
    shifted views when `tta` (test-time augmentation: ensembles, and predict --tta); (N, classes) on the CPU."""
    views = SHIFTS if tta else SHIFTS[:1]
    device = next(module.parameters()).device
    out = []
    for batch in images.split(batch_size):
        batch = batch.to(device)
        probs = sum(module(module.preprocess(shifted(batch, dx, dy))).float().softmax(dim=1) for dx, dy in views)
        out.append((probs / len(views)).cpu())
    return torch.cat(out)

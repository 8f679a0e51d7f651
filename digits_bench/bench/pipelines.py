"""The three training pipelines `make bench` times, each one epoch at a time on the same data.

(a) tutorial: torchvision's MNIST Dataset with ToTensor/Normalize, a DataLoader, a plain loop
    (seed 001's pipeline, num_workers=0 as it has it);
(b) device loop: the same plain loop over uint8 tensors already on the device;
(c) harness: `digits_bench.train.train`, exactly the CLI path, Lightning and MLflow on.
Each returns the seconds of every training epoch (no evaluation).
"""
from __future__ import annotations

import time
from typing import Callable

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig

from ..config import compose_config
from ..data import DigitsDataModule
from ..data.datamodule import holdout_split


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _setup(cfg: DictConfig) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.device, torch.Tensor]:
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.trainer.accelerator != "cpu" else "cpu")
    torch.manual_seed(cfg.seed)
    model = instantiate(cfg.model).to(device)
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    train_idx, _ = holdout_split(60_000, cfg.data.val_size, cfg.data.split_seed)
    if cfg.data.subset is not None:
        train_idx = train_idx[: cfg.data.subset]
    return model, optimizer, device, train_idx


def _epochs(epochs: int, device: torch.device, run_epoch: Callable[[], None]) -> list[float]:
    times = []
    for _ in range(epochs):
        _sync(device)
        start = time.perf_counter()
        run_epoch()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def tutorial(cfg: DictConfig, epochs: int) -> list[float]:
    import torchvision
    from torchvision import transforms

    model, optimizer, device, train_idx = _setup(cfg)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((cfg.data.mean,), (cfg.data.std,))])
    root = str(instantiate(cfg.data).spec.raw_dir.parent.parent)
    dataset = torch.utils.data.Subset(torchvision.datasets.MNIST(root, train=True, download=False, transform=transform), train_idx.tolist())
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.data.batch_size, shuffle=True, num_workers=0)
    model.train()

    def run_epoch() -> None:
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()

    return _epochs(epochs, device, run_epoch)


def device_loop(cfg: DictConfig, epochs: int) -> list[float]:
    model, optimizer, device, train_idx = _setup(cfg)
    datamodule: DigitsDataModule = instantiate(cfg.data)
    from ..data import load_split

    images, labels = load_split(datamodule.spec, "train")
    images, labels = images[train_idx].to(device), labels[train_idx].to(device)
    batch = cfg.data.batch_size
    model.train()

    def run_epoch() -> None:
        order = torch.randperm(len(labels), device=device)
        for start in range(0, len(labels), batch):
            index = order[start : start + batch]
            x = (images[index].unsqueeze(1).float() / 255 - cfg.data.mean) / cfg.data.std
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), labels[index])
            loss.backward()
            optimizer.step()

    return _epochs(epochs, device, run_epoch)


def harness(cfg: DictConfig, epochs: int) -> list[float]:
    from ..train import train

    result = train(cfg)
    assert result is not None
    from .. import tracking

    history = tracking.make_client(cfg).get_metric_history(result.run_id, "time/epoch_s")
    return [m.value for m in sorted(history, key=lambda m: m.step)]


PIPELINES = {"tutorial": tutorial, "device_loop": device_loop, "harness": harness}


def bench_config(model: str, subset: int | None, epochs: int, extra: list[str]) -> DictConfig:
    overrides = [f"model={model}", "optimizer=sgd", "optimizer.lr=0.05", "data.batch_size=100",
                 f"trainer.max_epochs={epochs}", "tracking.experiment=bench", "tracking.log_checkpoint=false", *extra]
    if subset:
        overrides.append(f"data.subset={subset}")
    return compose_config(overrides)

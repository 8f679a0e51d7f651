"""The four training pipelines `make bench` times, each one epoch at a time on the same data.

(a) tutorial: torchvision's MNIST Dataset with ToTensor/Normalize, a DataLoader, a plain loop
    (seed 001's pipeline, num_workers=0 as it has it);
(b) device loop: the same plain loop over uint8 tensors already on the device;
(c) harness: `digits_bench.training.run.train`, exactly the CLI path, Lightning and MLflow on;
(d) limit: the fastest plain PyTorch loop we can write for the same model and recipe, the reference
    the harness is held to: on CUDA one CUDA graph per step (fused SGD, the run's autocast and memory
    format); on a CPU there are no graphs, so it is (b) with the harness's in-place preprocessing.
Each returns the seconds of every training epoch (no evaluation).
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig

from digits_bench.config import compose_config
from digits_bench.data import DatasetSpec, DigitsDataModule
from digits_bench.data.datamodule import holdout_split
from digits_bench.data.sources import read_verified


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _setup(cfg: DictConfig) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.device, torch.Tensor]:
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.trainer.accelerator != "cpu" else "cpu")
    torch.manual_seed(cfg.seed)
    model = instantiate(cfg.model).to(device)
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    train_idx, _ = holdout_split(cfg.data.dataset.train_size, cfg.data.val_size, cfg.data.split_seed)
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


def unpack_idx(spec: DatasetSpec) -> None:
    """torchvision's MNIST reads only the plain IDX files; the offline kit ships them gzipped. Unpack, md5-verified."""
    for key, name in spec.files.items():
        plain = spec.raw_dir / name
        if not plain.is_file():
            blob = read_verified(spec, key)  # DataError, saying what to do, when missing or corrupt
            partial = plain.with_name(name + ".partial")
            partial.write_bytes(blob)
            partial.replace(plain)


def tutorial(cfg: DictConfig, epochs: int) -> list[float]:
    import torchvision
    from torchvision import transforms

    model, optimizer, device, train_idx = _setup(cfg)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((cfg.data.mean,), (cfg.data.std,))])
    spec = instantiate(cfg.data).spec
    unpack_idx(spec)
    root = str(Path(spec.raw_dir).parent.parent)
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
    from digits_bench.data import load_split

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


def limit(cfg: DictConfig, epochs: int) -> list[float]:
    model, _, device, train_idx = _setup(cfg)
    cuda = device.type == "cuda"
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = instantiate(cfg.optimizer)(model.parameters(), **({"fused": True} if cuda else {}))
    datamodule: DigitsDataModule = instantiate(cfg.data)
    from digits_bench.data import load_split

    images, labels = load_split(datamodule.spec, "train")
    images, labels = images[train_idx].to(device), labels[train_idx].to(device)
    scale, shift = 1.0 / (255.0 * cfg.data.std), cfg.data.mean / cfg.data.std
    bf16 = cuda and str(cfg.trainer.precision) == "bf16-mixed"
    batch = cfg.data.batch_size
    model.train()

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        autocast = torch.autocast("cuda", torch.bfloat16, cache_enabled=False) if bf16 else contextlib.nullcontext()
        with autocast:
            inputs = x.unsqueeze(1).float().mul_(scale).sub_(shift)
            if cfg.channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(inputs), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    graph, static_x, static_y = None, images[:batch].clone(), labels[:batch].clone()
    if cuda:  # warm up on a side stream (cuDNN autotune, momentum buffers), then capture one step; untimed
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step(static_x, static_y)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step(static_x, static_y)

    def run_epoch() -> None:
        order = torch.randperm(len(labels), device=device)
        xs, ys = images[order], labels[order]
        for start in range(0, len(ys), batch):
            x, y = xs[start : start + batch], ys[start : start + batch]
            if graph is not None and len(y) == batch:
                static_x.copy_(x)
                static_y.copy_(y)
                graph.replay()
            else:
                step(x, y)

    return _epochs(epochs, device, run_epoch)


def harness(cfg: DictConfig, epochs: int) -> list[float]:
    from digits_bench.training.run import train

    result = train(cfg)
    assert result is not None
    from digits_bench.names import Metric
    from digits_bench.tracking.store import make_client

    history = make_client(cfg).get_metric_history(result.run_id, Metric.EPOCH_S)
    return [m.value for m in sorted(history, key=lambda m: m.step)]


PIPELINES = {"tutorial": tutorial, "device_loop": device_loop, "harness": harness, "limit": limit}


def bench_config(model: str, subset: int | None, epochs: int, extra: list[str]) -> DictConfig:
    overrides = [f"model={model}", "optimizer=sgd", "optimizer.lr=0.05", "data.batch_size=100",
                 f"trainer.max_epochs={epochs}", "tracking.experiment=bench", "tracking.log_checkpoint=false", *extra]
    if subset:
        overrides.append(f"data.subset={subset}")
    return compose_config(overrides)

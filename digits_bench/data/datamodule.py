"""One LightningDataModule for every MNIST-format dataset: tensors on the device, batches by index."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import lightning.pytorch as pl
import torch

from digits_bench.data.device_batches import DeviceBatches
from digits_bench.data.idx import parse_idx
from digits_bench.data.sources import DatasetSpec, ensure_files, read_unverified, read_verified
from digits_bench.errors import DataError


def load_split(spec: DatasetSpec, split: str, verified: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images N×28×28, int64 labels N) of 'train' or 'test', md5-verified unless `verified` says
    ensure_files already did it in this run."""
    read = read_unverified if verified else read_verified
    images = parse_idx(read(spec, f"{split}_images"), f"{spec.name} {split} images")
    labels = parse_idx(read(spec, f"{split}_labels"), f"{spec.name} {split} labels")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def check_sizes(spec: DatasetSpec) -> None:
    """Each split's files hold as many images as the config says (`data.dataset.train_size`, `test_size`, which bound
    the split sizes a command line may ask for): read from the small label files, before a run exists."""
    for split, expected in (spec.sizes or {}).items():
        found = len(parse_idx(read_unverified(spec, f"{split}_labels"), f"{spec.name} {split} labels"))
        if found != expected:
            raise DataError(f"{spec.name}: its {split} files hold {found} images, its config says "
                            f"data.dataset.{split}_size={expected}; set it to {found}")


def holdout_split(n: int, val_size: int, split_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices): a seeded random hold-out, the same for every run of a split_seed."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    return order[val_size:].sort().values, order[:val_size].sort().values


def stroke_digits(count: int, seed: int, cache: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` stroke-drawn digits of the training writers (`data/strokes.py`), drawn from `seed` once and kept in
    `cache` (`<cache>/strokes-v<version>-<seed>-<count>.npz`, written whole or not at all)."""
    from digits_bench.data import strokes

    path = Path(cache) / f"strokes-v{strokes.VERSION}-{seed}-{count}.npz" if cache else None
    if path is not None and path.is_file():
        with np.load(path) as saved:
            return torch.from_numpy(saved["images"]), torch.from_numpy(saved["labels"])
    images, labels = strokes.training_digits(count, seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.npz")
        np.savez(partial, images=images, labels=labels)
        partial.replace(path)
    return torch.from_numpy(images), torch.from_numpy(labels)


class DigitsDataModule(pl.LightningDataModule):
    """Train / validation (a seeded hold-out of the training files) / test, each one uint8 tensor on the device.

    Images stay uint8 until the LightningModule normalises (and augments) them on
    the device, so host-to-device traffic happens once per run, not per batch.
    """

    def __init__(
        self,
        dataset: dict[str, Any],
        num_classes: int = 10,
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        chunk_batches: int = 1,
        val_size: int = 5000,
        split_seed: int = 0,
        seed: int = 0,
        subset: int | None = None,
        test_subset: int | None = None,
        strokes: float = 0.0,
        strokes_cache: str | None = None,
        mean: float = 0.1307,
        std: float = 0.3081,
    ) -> None:
        super().__init__()
        self.spec = DatasetSpec.from_config(dataset)
        self.num_classes = num_classes
        self.batch_size, self.eval_batch_size, self.chunk_batches = batch_size, eval_batch_size, chunk_batches
        self.val_size, self.split_seed, self.seed = val_size, split_seed, seed
        self.subset, self.test_subset = subset, test_subset
        self.strokes, self.strokes_cache = strokes, strokes_cache
        self.mean, self.std = mean, std
        self.tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._prepared = False

    def prepare_data(self) -> None:
        if not self._prepared:  # Lightning calls this again for fit and for test: verify the md5s once
            ensure_files(self.spec)
            check_sizes(self.spec)
            self._prepared = True  # setup() then reads the files without hashing them again

    def setup(self, stage: str | None = None) -> None:
        if self.tensors:
            return
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        images, labels = load_split(self.spec, "train", verified=self._prepared)
        train_idx, val_idx = holdout_split(len(labels), self.val_size, self.split_seed)
        if self.subset is not None:
            train_idx = train_idx[: self.subset]
        test_x, test_y = load_split(self.spec, "test", verified=self._prepared)
        if self.test_subset is not None:
            test_x, test_y = test_x[: self.test_subset], test_y[: self.test_subset]
        train_x, train_y = images[train_idx], labels[train_idx]
        if self.strokes > 0:  # stroke-drawn digits of the shapes people write, into training only
            drawn_x, drawn_y = stroke_digits(round(self.strokes * len(train_idx)), self.split_seed, self.strokes_cache)
            train_x, train_y = torch.cat([train_x, drawn_x]), torch.cat([train_y, drawn_y])
        splits = {"train": (train_x, train_y), "val": (images[val_idx], labels[val_idx]), "test": (test_x, test_y)}
        self.tensors = {name: (x.to(device), y.to(device)) for name, (x, y) in splits.items()}

    def _batches(self, split: str, train: bool = False) -> DeviceBatches:
        images, labels = self.tensors[split]
        trainer = self.trainer
        return DeviceBatches(
            images,
            labels,
            self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            seed=self.seed,
            epoch=(lambda: trainer.current_epoch) if trainer is not None else (lambda: 0),
            rank=trainer.global_rank if trainer is not None else 0,
            world_size=trainer.world_size if trainer is not None else 1,
            # DDP syncs gradients once per forward of the wrapped module: one batch per training step there
            chunk=self.chunk_batches if train and (trainer is None or trainer.world_size == 1) else 1,
        )

    def train_dataloader(self) -> DeviceBatches:
        return self._batches("train", train=True)

    def val_dataloader(self) -> DeviceBatches:
        return self._batches("val")

    def test_dataloader(self) -> DeviceBatches:
        return self._batches("test")

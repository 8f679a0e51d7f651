"""Mini-batches gathered by index from tensors that already live on the training device.

No Dataset, no workers, no per-sample Python: each item is one indexed gather.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch


class DeviceBatches:
    """An epoch of (uint8 images, labels) batches.

    Training order is a permutation drawn from (seed, epoch), so every epoch
    reshuffles and a resumed run replays the same order. Under DDP each rank
    takes every world_size-th index of the permutation; for training all ranks
    get the same number of batches so gradient all-reduces stay in step.

    With `chunk=k` each item holds k consecutive batches (the same images in the
    same order), so Lightning's per-item costs are paid once per k optimizer steps.
    This class is the one place that knows it: `split` gives an item's mini-batches
    and `batches_through` counts them.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        epoch: Callable[[], int] = lambda: 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        chunk: int = 1,
    ) -> None:
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, epoch
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.chunk = max(1, chunk)

    def _indices(self) -> torch.Tensor:
        n = len(self.labels)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch())
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        if self.world_size > 1:
            if self.shuffle:  # equal shard sizes for training
                order = order[: n - n % self.world_size]
            order = order[self.rank :: self.world_size]
        return order.to(self.labels.device, non_blocking=True)

    def _shard_size(self) -> int:
        n = len(self.labels)
        if self.world_size == 1:
            return n
        if self.shuffle:
            return n // self.world_size
        return len(range(self.rank, n, self.world_size))

    @property
    def batches(self) -> int:
        """Mini-batches (optimizer steps, in training) per epoch."""
        size = self._shard_size()
        return size // self.batch_size if self.drop_last else -(-size // self.batch_size)

    def __len__(self) -> int:
        return -(-self.batches // self.chunk)

    def batches_through(self, item: int) -> int:
        """Mini-batches of an epoch done once its item `item` (counting from 0) is."""
        return min((item + 1) * self.chunk, self.batches)

    def split(self, images: torch.Tensor, labels: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The mini-batches of one item, one optimizer step each."""
        return zip(images.split(self.batch_size), labels.split(self.batch_size))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._indices()[: self.batches * self.batch_size]
        for index in order.split(self.batch_size * self.chunk):
            yield self.images[index], self.labels[index]

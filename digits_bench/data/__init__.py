"""Datasets in MNIST's IDX format, verified byte-exact and served from device memory.

The datamodule's names are re-exported on first use: `python -m digits_bench.data`, which only checks
files, does not load Lightning.
"""
from __future__ import annotations

from typing import Any

from digits_bench.data.device_batches import DeviceBatches
from digits_bench.data.normalise import normalise
from digits_bench.data.sources import DataError, DatasetSpec, ensure_files

_FROM_DATAMODULE = ("DigitsDataModule", "holdout_split", "load_split")
__all__ = ["DataError", "DatasetSpec", "DeviceBatches", "DigitsDataModule", "ensure_files", "holdout_split", "load_split", "normalise"]


def __getattr__(name: str) -> Any:
    if name in _FROM_DATAMODULE:
        from digits_bench.data import datamodule

        return getattr(datamodule, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

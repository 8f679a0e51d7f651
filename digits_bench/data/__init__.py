"""Datasets in MNIST's IDX format, verified byte-exact and served from device memory."""
from .datamodule import DigitsDataModule, holdout_split, load_split
from .device_batches import DeviceBatches
from .sources import DataError, DatasetSpec, ensure_files

__all__ = ["DataError", "DatasetSpec", "DeviceBatches", "DigitsDataModule", "ensure_files", "holdout_split", "load_split"]

"""Datasets in MNIST's IDX format, verified byte-exact and served from device memory."""
from digits_bench.data.datamodule import DigitsDataModule, holdout_split, load_split
from digits_bench.data.device_batches import DeviceBatches
from digits_bench.data.normalise import normalise
from digits_bench.data.sources import DataError, DatasetSpec, ensure_files

__all__ = ["DataError", "DatasetSpec", "DeviceBatches", "DigitsDataModule", "ensure_files", "holdout_split", "load_split", "normalise"]

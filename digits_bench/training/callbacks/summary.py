"""The network's summary as a run starts: one line (parameters, size, FLOPs), or Lightning's table on request
(`model_summary=table`); the network and the augmentation in use, not the metric objects."""
from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import RichModelSummary
from lightning.pytorch.utilities.model_summary import ModelSummary, get_human_readable_count
from torchmetrics import Metric, MetricCollection

log = logging.getLogger("digits_bench.training.run")


class NetworkSummary(RichModelSummary):
    """The metrics are modules of the LightningModule (so they follow it to its device), and Lightning lists them
    as layers of the model; so is an augmentation that is off. This summary leaves both out."""

    def __init__(self, table: bool = False) -> None:
        super().__init__()
        self.table = table

    def _summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> ModelSummary:
        summary = super()._summary(trainer, pl_module)
        summary._layer_summary = {name: layer for name, layer in summary._layer_summary.items()
                                  if not isinstance(layer._module, (Metric, MetricCollection))
                                  and getattr(layer._module, "enabled", True)}
        return summary

    def summarize(self, summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                  model_size: float, total_training_modes: dict[str, int], total_flops: int, **kwargs: Any) -> None:
        if self.table:
            super().summarize(summary_data, total_parameters, trainable_parameters, model_size, total_training_modes,
                              total_flops, **kwargs)
            return
        log.info("model: %s trainable parameters (%.2f MB), %s FLOPs an image (model_summary=table: the layers)",
                 f"{trainable_parameters:,}", model_size, get_human_readable_count(total_flops))

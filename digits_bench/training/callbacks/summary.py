"""Lightning's model summary of what trains: the network and the augmentation, not the metric objects."""
from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import RichModelSummary
from lightning.pytorch.utilities.model_summary import ModelSummary
from torchmetrics import Metric, MetricCollection


class NetworkSummary(RichModelSummary):
    """The metrics are modules of the LightningModule (so they follow it to its device), and Lightning
    lists them as layers of the model; this summary leaves them out of the table."""

    def _summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> ModelSummary:
        summary = super()._summary(trainer, pl_module)
        summary._layer_summary = {name: layer for name, layer in summary._layer_summary.items()
                                  if not isinstance(layer._module, (Metric, MetricCollection))}
        return summary

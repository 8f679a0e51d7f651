"""The learning rate as one metric, `lr`, whatever the optimizer (Lightning's monitor names it `lr-SGD`, `lr-AdamW`)."""
from __future__ import annotations

import lightning.pytorch as pl

from digits_bench.names import Metric


class LearningRate(pl.Callback):
    """Logs `lr`, the rate of the first parameter group at the start of each epoch (where one-cycle or
    step schedules move it during the epoch, the curve shows the rate each epoch began with)."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.optimizers:
            return
        rate = float(trainer.optimizers[0].param_groups[0]["lr"])  # at full precision: self.log would make it float32
        for logger in trainer.loggers:
            logger.log_metrics({Metric.LR: rate, Metric.EPOCH: trainer.current_epoch})

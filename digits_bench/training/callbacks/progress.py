"""A progress bar that counts mini-batches, what the rate and ETA should be measured in.

A Lightning training batch may pack several mini-batches (one optimizer step each; DeviceBatches says
how many), so Lightning's own bar counts chunks ("28/28" for 550 steps) and its rate means little.
"""
from __future__ import annotations

import math
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

from digits_bench.data import DeviceBatches


class MiniBatchProgressBar(TQDMProgressBar):
    """Epoch bar in mini-batches: total, position, rate (batch/s) and ETA; validation accuracy in the postfix.

    `refresh_rate` is in mini-batches too; the bar moves at most once per Lightning batch, and no more often
    than tqdm's `mininterval` (0.1 s) except to show the epoch's end: drawing it costs a small model ~2%.
    """

    def _batches_through(self, item: int) -> int:
        """Mini-batches done once training batch `item` of the epoch is."""
        loader = self.trainer.train_dataloader
        return loader.batches_through(item) if isinstance(loader, DeviceBatches) else item + 1

    @property
    def total_train_batches(self) -> int | float:
        total = super().total_train_batches
        return self._batches_through(int(total) - 1) if math.isfinite(total) else total

    def init_train_tqdm(self) -> Tqdm:
        bar = super().init_train_tqdm()
        bar.unit = " batch"
        return bar

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        bar = self.train_progress_bar
        if bar is None or bar.disable:
            return
        n = self._batches_through(batch_idx)
        if bar.total is not None:
            n = min(n, int(bar.total))
        due = n - bar.n >= self.refresh_rate and time.time() - bar.last_print_t >= bar.mininterval  # tqdm's own pace
        if due or n == bar.total:
            bar.n = n
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            bar.refresh()

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the MLflow run id's tail: the run id is printed in full at the start
        return metrics

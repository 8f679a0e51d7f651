"""A progress bar that counts mini-batches, what the rate and ETA should be measured in.

A Lightning training batch packs `data.chunk_batches` mini-batches (one optimizer step each), so
Lightning's own bar counts chunks ("28/28" for 550 steps) and its rate means little.
"""
from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm


class MiniBatchProgressBar(TQDMProgressBar):
    """Epoch bar in mini-batches: total, position, rate (batch/s) and ETA; validation accuracy in the postfix.

    `refresh_rate` is in mini-batches too; the bar moves at most once per Lightning batch.
    """

    def _loader_sizes(self) -> tuple[int, int | None]:
        loader = self.trainer.train_dataloader
        return max(1, int(getattr(loader, "chunk", 1))), getattr(loader, "batches", None)

    @property
    def total_train_batches(self) -> int | float:
        total = super().total_train_batches
        chunk, batches = self._loader_sizes()
        if batches is None or not math.isfinite(total):
            return total
        return min(int(total) * chunk, int(batches))

    def init_train_tqdm(self) -> Tqdm:
        bar = super().init_train_tqdm()
        bar.unit = " batch"
        return bar

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        bar = self.train_progress_bar
        if bar is None or bar.disable:
            return
        chunk, _ = self._loader_sizes()
        n = (batch_idx + 1) * chunk
        if bar.total is not None:
            n = min(n, int(bar.total))
        if n - bar.n >= self.refresh_rate or n == bar.total:
            bar.n = n
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            bar.refresh()

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the MLflow run id's tail: the run id is printed in full at the start
        return metrics

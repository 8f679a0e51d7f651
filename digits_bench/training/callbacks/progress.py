"""Progress as a run trains: a bar on a terminal, one line per epoch anywhere else (`progress_callback`).

On a terminal (stderr, where progress goes: stdout keeps the results), one bar per epoch that counts mini-batches, what the rate and ETA should be measured in: a Lightning
training batch may pack several mini-batches (one optimizer step each; DeviceBatches says how many), so
Lightning's own bar counts chunks ("28/28" for 550 steps) and its rate means little. Into a pipe, a file or a
CI log a bar cannot redraw itself (its carriage returns and cursor codes pile up): one line per epoch instead.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from typing import Any, Callable

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

from digits_bench.data import DeviceBatches
from digits_bench.names import Metric


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

    @staticmethod
    def _on_stderr(make: Callable[[], Tqdm]) -> Tqdm:
        """Lightning's bars write to `sys.stdout` as it is when they are made: progress goes to stderr, results to stdout."""
        with contextlib.redirect_stdout(sys.stderr):
            return make()

    def on_train_start(self, *_: Any) -> None:
        """Nothing: each epoch makes its own bar (`leave=True`), and one made here would stay behind, empty."""

    def init_train_tqdm(self) -> Tqdm:
        bar = self._on_stderr(super().init_train_tqdm)
        bar.unit = " batch"
        return bar

    def init_sanity_tqdm(self) -> Tqdm:
        return self._on_stderr(super().init_sanity_tqdm)

    def init_validation_tqdm(self) -> Tqdm:
        return self._on_stderr(super().init_validation_tqdm)

    def init_test_tqdm(self) -> Tqdm:
        return self._on_stderr(super().init_test_tqdm)

    def init_predict_tqdm(self) -> Tqdm:
        return self._on_stderr(super().init_predict_tqdm)

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


class EpochLines(Callback):
    """One line per epoch on stderr: `epoch 0 (1 of 3)  train/loss 0.4512 ... val/acc 0.8812  2.31 s`.

    An epoch's training metrics are reduced after the callbacks' `on_train_epoch_end`, so its line is printed as
    the next epoch starts, or as training ends."""

    SHOWN = (Metric.TRAIN_LOSS, Metric.TRAIN_ACC, Metric.VAL_LOSS, Metric.VAL_ACC)

    def __init__(self) -> None:
        self._started = 0.0
        self._ended: tuple[int, float] | None = None  # the epoch whose line is due, and its seconds

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print_due(trainer)
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ended = (trainer.current_epoch, time.perf_counter() - self._started)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print_due(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._print_due(trainer)  # the last finished epoch, before the interrupt's own line

    def _print_due(self, trainer: pl.Trainer) -> None:
        if self._ended is None or trainer.global_rank != 0:
            return
        (epoch, seconds), self._ended = self._ended, None
        metrics = trainer.callback_metrics
        shown = "  ".join(f"{key} {float(metrics[key]):.4f}" for key in self.SHOWN if key in metrics)
        print(f"epoch {epoch} ({epoch + 1} of {trainer.max_epochs})  {shown}  {seconds:.2f} s", file=sys.stderr, flush=True)


def progress_callback(refresh_rate: int) -> Callback:
    """A bar per epoch, left standing when it ends, where it can redraw itself (stderr is a terminal), else one line
    per epoch."""
    return MiniBatchProgressBar(refresh_rate=refresh_rate, leave=True) if sys.stderr.isatty() else EpochLines()

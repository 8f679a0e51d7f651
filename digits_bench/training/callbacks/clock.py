"""Timing callbacks: training time per epoch (evaluation excluded), throughput and time to accuracy."""
from __future__ import annotations

import time
from typing import Any, Sequence

import lightning.pytorch as pl
import torch

from digits_bench.names import LEADERBOARD_VAL_ACC, Metric, time_to_val_acc


def _sync(module: pl.LightningModule) -> None:
    if module.device.type == "cuda":
        torch.cuda.synchronize(module.device)


class TrainingClock(pl.Callback):
    """Logs per epoch `time/epoch_s`, `time/train_s` (cumulative), `time/images_per_s`, `time/warmup_s`,
    and once each `time/to_val_acc_<t>_s`: the training wall time at which validation accuracy first reached t,
    for the given thresholds and the leaderboard's (names.LEADERBOARD_VAL_ACC), which the report reads.

    The clock stops when validation starts, so evaluation is never counted. Neither is warm-up: the
    seconds the module spent in its first steps on a GPU (cuDNN autotune, CUDA graph capture), which
    it adds up in `warmup_seconds`; they are logged apart as `time/warmup_s`, so the first run in a
    process is not slower than the rest by a one-off cost.
    """

    def __init__(self, thresholds: Sequence[float] = ()) -> None:
        self.thresholds = tuple(sorted({*thresholds, *LEADERBOARD_VAL_ACC}))
        self.train_seconds = 0.0
        self.reached: dict[float, float] = {}
        self._start: float | None = None
        self._epoch_seconds = 0.0
        self._images = 0
        self._warmup_at_start = 0.0

    def _stop(self, pl_module: pl.LightningModule) -> None:
        if self._start is not None:
            _sync(pl_module)
            warmup = getattr(pl_module, "warmup_seconds", 0.0) - self._warmup_at_start
            self._epoch_seconds = time.perf_counter() - self._start - warmup
            self.train_seconds += self._epoch_seconds
            self._start = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _sync(pl_module)
        self._images = 0
        self._warmup_at_start = getattr(pl_module, "warmup_seconds", 0.0)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._images += len(batch[1])

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._stop(pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop(pl_module)
        metrics = {
            Metric.EPOCH_S: self._epoch_seconds,
            Metric.TRAIN_S: self.train_seconds,
            Metric.IMAGES_PER_S: self._images * trainer.world_size / max(self._epoch_seconds, 1e-9),
            Metric.WARMUP_S: getattr(pl_module, "warmup_seconds", 0.0),
        }
        val_acc = trainer.callback_metrics.get(Metric.VAL_ACC)
        if val_acc is not None:
            for threshold in self.thresholds:
                if threshold not in self.reached and float(val_acc) >= threshold:
                    self.reached[threshold] = self.train_seconds
                    metrics[time_to_val_acc(threshold)] = self.train_seconds
        pl_module.log_dict(metrics, rank_zero_only=True)

    def state_dict(self) -> dict[str, Any]:
        return {"train_seconds": self.train_seconds, "reached": self.reached}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train_seconds = state_dict["train_seconds"]
        self.reached = dict(state_dict["reached"])


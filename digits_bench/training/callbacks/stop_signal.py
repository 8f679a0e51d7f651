"""SIGTERM in a multi-process run: every process stops at once and the run ends KILLED."""
from __future__ import annotations

import signal
from types import FrameType
from typing import Optional

import lightning.pytorch as pl


class StopAllRanksOnSigterm(pl.Callback):
    """Replaces Lightning's SIGTERM handler once training starts with several processes.

    Lightning's handler broadcasts to the other ranks from inside the signal handler
    while its launcher is terminating them, and the run hangs for good. Here a rank that
    receives SIGTERM kills the processes it launched (none, unless it is rank 0 of a
    `ddp` run) and raises KeyboardInterrupt, which Lightning and tracking.mlflow_run
    turn into an exit with the run KILLED.
    """

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size > 1:
            self._trainer = trainer
            signal.signal(signal.SIGTERM, self._stop)

    def _stop(self, signum: int, frame: Optional[FrameType]) -> None:
        launcher = self._trainer.strategy.launcher
        if launcher is not None:
            launcher.kill(signal.SIGKILL)  # peers blocked in a collective would otherwise wait forever
        raise KeyboardInterrupt

"""SIGINT or SIGTERM in a multi-process run: every process stops at once and the run ends KILLED."""
from __future__ import annotations

import signal

import lightning.pytorch as pl

from digits_bench import signals


class StopAllRanksOnSignal(pl.Callback):
    """Once training starts with several processes, puts the harness's one handler (digits_bench.signals) back in
    place of Lightning's, with the processes this one launched to be killed first.

    Lightning's SIGTERM handler broadcasts to the other ranks from inside the signal handler while
    its launcher is terminating them, and the run hangs for good. Here a rank that receives the
    signal kills the processes it launched (none, unless it is rank 0 of a `ddp` run) and raises
    KeyboardInterrupt, which Lightning and tracking.runs turn into an exit with the run KILLED.
    Lightning puts back the handlers it found when fit ends.
    """

    def __init__(self) -> None:
        self._launcher = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size > 1:
            self._launcher = trainer.strategy.launcher
            signals.install(before_raising=self._kill_launched)

    def _kill_launched(self) -> None:
        if self._launcher is not None:
            self._launcher.kill(signal.SIGKILL)  # peers blocked in a collective would otherwise wait forever

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        signals.forget(self._kill_launched)
        self._launcher = None

"""Ctrl-C or SIGTERM during fit, in this process or another of the run's (a rank on another node): the line that
says how to continue the run."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from digits_bench.errors import peer_stopped
from digits_bench.tracking.handoff import job_rank
from digits_bench.training.checkpoint_io import LAST

log = logging.getLogger("digits_bench")


class ResumeHint(Callback):
    """On Ctrl-C / SIGTERM during fit, say how to continue the run (Lightning then exits); rank 0 says it, also when
    the stop reached another rank first and rank 0 lost it as a peer."""

    def __init__(self, run_id: str, checkpoint_dir: Path) -> None:
        self.run_id, self.checkpoint_dir = run_id, checkpoint_dir

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not (isinstance(exception, KeyboardInterrupt) or peer_stopped(exception)) or trainer.global_rank != 0:
            return
        if (self.checkpoint_dir / LAST).is_file():
            how = (f"`python -m digits_bench resume={self.run_id}`" if job_rank() is None else  # started by torchrun or srun:
                   f"the same command on every node, with resume={self.run_id}")
            log.info("interrupted: run %s is KILLED; continue it from its last finished epoch with %s", self.run_id, how)
        else:
            log.info("interrupted before the first epoch finished: run %s has no checkpoint to resume; start it again", self.run_id)

    def state_dict(self) -> dict[str, Any]:
        return {}

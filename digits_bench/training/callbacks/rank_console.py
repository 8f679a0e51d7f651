"""A process that `ddp_spawn` starts runs Lightning's fit, not our command: it has the console set-up of none.

Its warnings (by design silenced in the command: the datamodule's batch hook, Lightning's own deprecated torch
API, per-epoch logging without sync_dist) would reach the user's console once per rank. Each rank sets the
console up as the command did, as training starts there.
"""
from __future__ import annotations

import lightning.pytorch as pl

from digits_bench.console import setup_console


class RankConsole(pl.Callback):
    """`setup_console()` in every process that trains (idempotent where the command already did)."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        setup_console()

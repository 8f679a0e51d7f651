"""Optuna pruning for our `pytorch_lightning` Trainer.

optuna-integration's PyTorchLightningPruningCallback is written against the
`lightning.pytorch` namespace, which a `pytorch_lightning` Trainer rejects; these
few lines do the same job in the namespace the whole project uses.
"""
from __future__ import annotations

import optuna
import pytorch_lightning as pl


class OptunaPruning(pl.Callback):
    """Reports `monitor` to the trial after every validation; asks the trainer to stop when Optuna prunes.

    Stopping (rather than raising inside Lightning) lets the run close cleanly;
    the sweep then records the trial as pruned.
    """

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        self.trial, self.monitor = trial, monitor
        self.pruned_at: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        epoch = trainer.current_epoch
        self.trial.report(float(trainer.callback_metrics[self.monitor]), step=epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            trainer.should_stop = True

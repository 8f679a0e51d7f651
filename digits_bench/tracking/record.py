"""What a training run records, in the order it records it: once it starts, once fit is over, once it is tested.

`train()` fits; everything it writes to the store goes through here, on rank 0, with a `RunContext` worked out
once when the run opens (client, run id, tracking URI, checkpoint folder), so no step recomputes where things are.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from digits_bench.config.validation import QUICK_LOOK
from digits_bench.names import Metric
from digits_bench.tracking import runs
from digits_bench.tracking.figures import log_run_report
from digits_bench.tracking.logger import float_value
from digits_bench.tracking.model import log_model
from digits_bench.tracking.store import checkpoint_folder, tracking_uri
from digits_bench.tracking.watch import run_started

log = logging.getLogger(__name__)
CHANCE_MARGIN = 1.5  # a best val/acc under 1.5 / classes (0.15 for digits) is chance, whatever the class balance


@dataclass(frozen=True)
class RunContext:
    """One training run's place in the store and on disk."""
    cfg: DictConfig
    client: MlflowClient
    run_id: str
    tracking_uri: str
    checkpoints: Path
    resumed: bool

    @classmethod
    def of(cls, cfg: DictConfig, client: MlflowClient, run_id: str) -> "RunContext":
        return cls(cfg, client, run_id, tracking_uri(cfg), checkpoint_folder(cfg, run_id), bool(cfg.get("resume")))


def started(run: RunContext, device: str, params: Mapping[str, Any]) -> None:
    """Say where the run is watched; a new run (not a resumed one) records its config, `params` (the chosen
    options, the parameter count) and the training data it reads."""
    experiment_id = run.client.get_run(run.run_id).info.experiment_id
    log.info(run_started(run.cfg, experiment_id, run.run_id, run.checkpoints, device))
    if not run.resumed:
        runs.log_config(run.client, run.run_id, run.cfg, params)
        runs.log_dataset(run.client, run.run_id, run.cfg, "training")


def best_epoch(run: RunContext, judge_chance: bool) -> int:
    """`val/acc_best` and `best_epoch`: the epoch the checkpoint callback kept (the first of equal bests), at the
    last epoch's step, returned. A run that never got clear of chance says so: a quick look can end there unnoticed."""
    history = sorted(run.client.get_metric_history(run.run_id, Metric.VAL_ACC), key=lambda m: m.step)
    if not history:
        return 0
    best = max(history, key=lambda m: m.value)  # max() keeps the first of equals, as ModelCheckpoint does
    run.client.log_metric(run.run_id, Metric.VAL_ACC_BEST, best.value, step=history[-1].step)
    run.client.log_metric(run.run_id, Metric.BEST_EPOCH, best.step, step=history[-1].step)
    classes = run.cfg.data.num_classes
    if judge_chance and best.value < CHANCE_MARGIN / classes:  # info: shown after a run, not after each trial of a sweep
        log.info(
            "run %s: %s never rose above %.3f, chance level for %d classes: the model did not leave its starting "
            "plateau (a small initialisation such as MXNet's needs more steps); train longer (trainer.max_epochs), on "
            "more data (data.subset), from PyTorch's initialisation (model.init=torch), or with a larger optimizer.lr "
            "(a quick look that learns: %s)", run.run_id, Metric.VAL_ACC, best.value, classes, QUICK_LOOK)
    return best.step


def tested(run: RunContext, net: torch.nn.Module, outputs: dict[str, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
           best_checkpoint: str, epoch: int, model_name: str) -> None:
    """After the one test: the test split as the run's evaluation input, the report (tables, figures), the best
    checkpoint when asked for, and the network as a LoggedModel carrying `epoch`'s metrics."""
    cfg = run.cfg
    runs.log_dataset(run.client, run.run_id, cfg, "evaluation")
    log_run_report(run.client, run.run_id, outputs, *test, figures=cfg.tracking.figures)
    if cfg.tracking.log_checkpoint:
        run.client.log_artifact(run.run_id, best_checkpoint, "checkpoints")
    log_model(run.tracking_uri, run.run_id, net, cfg.data.mean, cfg.data.std, test[0], name=model_name, epoch=epoch)


def final_metrics(run: RunContext, started_at: float) -> dict[str, float]:
    """Log the run's wall time (`time/wall_s`, from `started_at` to this last record), then read back every metric."""
    run.client.log_metric(run.run_id, Metric.WALL_S, float_value(time.perf_counter() - started_at))
    return {k: float(v) for k, v in run.client.get_run(run.run_id).data.metrics.items()}


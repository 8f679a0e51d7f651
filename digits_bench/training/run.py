"""The one training path. The CLI, sweeps, the benchmark and the tests all call `train(cfg)`."""
from __future__ import annotations

import logging
import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from lightning.pytorch.callbacks import Callback, EarlyStopping
from lightning.pytorch.profilers import Profiler
from mlflow.tracking import MlflowClient

from digits_bench.names import Metric, Param, Tag, choice, run_name
from digits_bench.redaction import redacted
from digits_bench.tracking import record, runs
from digits_bench.tracking.store import checkpoint_folder, environment_tags, tracking_uri
from digits_bench.training.callbacks.clock import TrainingClock
from digits_bench.training.checkpoint_io import LAST, AtomicCheckpointIO, BestAndLast, load_tensors, tidy_for_resume
from digits_bench.console import route_lightning_logs
from digits_bench.tracking.watch import ui_command
from digits_bench.training.callbacks.resume_hint import ResumeHint
from digits_bench.config.fingerprint import GROUPS, fingerprint
from digits_bench.training.callbacks.learning_rate import LearningRate
from digits_bench.config import group_choices, typed_overrides, validate
from digits_bench.errors import ConfigError, ModelLoadError, RunFailed
from digits_bench.tracking.faults import store_faults
from digits_bench.data import DigitsDataModule
from digits_bench.tracking.logger import RunLogger
from digits_bench.models import count_parameters
from digits_bench.training.module import DigitsClassifier
from digits_bench.training.step import GradientClip
from digits_bench.training.callbacks.progress import EpochLines, progress_callback
from digits_bench.training.callbacks.summary import NetworkSummary
from digits_bench.training.profiling import make_profiler, record_profile
from digits_bench.tracking.system_metrics import system_metrics
from digits_bench.training.callbacks.rank_console import RankConsole
from digits_bench.training.callbacks.stop_signal import StopAllRanksOnSignal

log = logging.getLogger(__name__)
OVERFIT_PASS = 0.99  # debug=overfit passes when the last epoch's train/acc reaches it


@dataclass
class TrainResult:
    run_id: str
    metrics: dict[str, float]
    best_checkpoint: str
    n_params: int
    choices: dict[str, str] = field(default_factory=dict)


def build_module(cfg: DictConfig) -> DigitsClassifier:
    """Model, optimizer, schedule and augmentation, each instantiated from its own config group; the model gets
    the dataset's number of classes."""
    net = instantiate(cfg.model, num_classes=cfg.data.num_classes)
    if cfg.channels_last:  # weights and inputs both NHWC, or convolutions fall back to a slow path
        net = net.to(memory_format=torch.channels_last)
    if cfg.compile:
        net = torch.compile(net)
    return DigitsClassifier(
        net=net,
        optimizer=instantiate(cfg.optimizer),
        schedule=instantiate(cfg.schedule),
        augment=instantiate(cfg.aug),
        mean=cfg.data.mean,
        std=cfg.data.std,
        num_classes=cfg.data.num_classes,
        channels_last=cfg.channels_last,
        cuda_graphs=cfg.get("cuda_graphs"),
        gradient_clip=GradientClip(clip, cfg.trainer.get("gradient_clip_algorithm") or "norm") if (clip := cfg.trainer.get("gradient_clip_val")) else None,
    )


def make_trainer(cfg: DictConfig, **options: Any) -> pl.Trainer:
    """The Trainer of `cfg.trainer`. Gradient clipping is the training step's (Lightning refuses it with manual
    optimization), so its keys stay out of the Trainer."""
    return instantiate(cfg.trainer, gradient_clip_val=None, gradient_clip_algorithm=None, **options)


def _callbacks(cfg: DictConfig, checkpoint_dir: Path, extra: list[Callback]) -> list[Callback]:
    callbacks: list[Callback] = [
        BestAndLast(dirpath=checkpoint_dir, filename="best-epoch{epoch:02d}", monitor=Metric.VAL_ACC, mode="max",
                        save_top_k=1, save_last=True, auto_insert_metric_name=False),
        LearningRate(),
        TrainingClock(tuple(cfg.time_to_val_acc)),
        StopAllRanksOnSignal(),
        RankConsole(),
        *extra,
    ]
    patience = OmegaConf.select(cfg, "early_stopping.patience")
    if patience is not None:
        callbacks.append(EarlyStopping(monitor=Metric.VAL_ACC, mode="max", patience=patience,
                                       min_delta=cfg.early_stopping.min_delta, verbose=True))
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(progress_callback(cfg.progress_refresh))
    if cfg.trainer.get("enable_model_summary", True):
        callbacks.append(NetworkSummary(table=cfg.model_summary == "table"))
    return callbacks


def recipe_or_model(cfg: DictConfig) -> str:
    """What a run is called by: its preset's recipe, or its model when it has none (`custom`)."""
    return cfg.recipe.name if cfg.recipe.name != "custom" else cfg.model.name


def default_run_name(cfg: DictConfig, overrides: list[str], job: str | None = None) -> str:
    """The recipe (or model), a multirun job's number, and what the user typed on top: `speedrun compile=true seed=3`,
    `lenet #1 optimizer=adamw` (as a sweep's trials are `<study> #<n>`)."""
    base = recipe_or_model(cfg) + (f" #{job}" if job is not None else "")
    return run_name(base, [o for o in overrides if not o.startswith(("experiment=", f"model={cfg.model.name}"))])


def _run_tags(cfg: DictConfig, choices: dict[str, str], extra: Mapping[str, str] | None) -> dict[str, str]:
    """Environment, chosen config options, the typed overrides, recipe, fingerprint and a readable run name."""
    overrides = typed_overrides()
    tags = environment_tags(cfg.trainer.accelerator) | {choice(k): v for k, v in choices.items()}
    tags |= {Tag.RECIPE: cfg.recipe.name, Tag.OVERRIDES: " ".join(overrides)[:5000], Tag.FINGERPRINT: fingerprint(cfg),
             Tag.RUN_NAME: cfg.tracking.run_name or default_run_name(cfg, overrides, (extra or {}).get(Tag.MULTIRUN_JOB))}
    return tags | user_tags(cfg) | dict(extra or {})


def user_tags(cfg: DictConfig) -> dict[str, str]:
    """`tags=[baseline,team:vision]`: a label is a tag with an empty value, `name:value` one with a value."""
    return dict((*str(tag).split(":", 1), "")[:2] for tag in cfg.get("tags") or [])


def _test_once(cfg: DictConfig, module: DigitsClassifier, datamodule: DigitsDataModule, logger: RunLogger, best: str) -> None:
    """The test set is read once, on one device (all predictions in order), with the best-validation weights."""
    tester = make_trainer(cfg, devices=1, num_nodes=1, strategy="auto", logger=logger, callbacks=[], profiler=None,
                          enable_checkpointing=False, enable_progress_bar=False)
    tester.test(module, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)


def check_trainer(cfg: DictConfig) -> None:
    """Lightning judges accelerator, devices, strategy and precision together when a Trainer is built: build one
    (nothing runs, nothing is printed) so a combination it refuses is one line before any run exists."""
    quiet = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make_trainer(cfg, logger=False, callbacks=[], enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    except Exception as err:  # Lightning's MisconfigurationException, ValueError, TypeError (an unknown key), ...
        cause = err.__cause__ or err  # Hydra wraps the Trainer's own error
        message = " ".join(str(cause).split()) or type(cause).__name__
        raise ConfigError(f"trainer: {message}") from None
    finally:
        quiet.setLevel(level)


def _leave_process_group() -> None:
    """After a multi-process fit, the other ranks exit and rank 0 tests alone: a process group left open
    would make the test metrics wait forever for ranks that are gone."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def _fit(cfg: DictConfig, run: record.RunContext, module: DigitsClassifier, datamodule: DigitsDataModule,
         callbacks: list[Callback], params: Mapping[str, Any], sampling: ExitStack) -> tuple[pl.Trainer, Profiler | None]:
    """Fit on every rank, from the run's last checkpoint when it is resumed; rank 0 records the run's start and
    samples system metrics until the run's block ends."""
    logger = RunLogger(tracking_uri=run.tracking_uri, run_id=run.run_id, synchronous=cfg.tracking.synchronous, resumed=run.resumed)
    ours = _callbacks(cfg, run.checkpoints, [*callbacks, ResumeHint(run.run_id, run.checkpoints)])
    lines = any(isinstance(c, EpochLines) for c in ours)  # not a bar: Lightning would add its own bar beside them
    profiler = make_profiler(cfg.trainer.get("profiler"), run.checkpoints)  # debug=profile: its report, kept
    trainer = make_trainer(cfg, logger=logger, callbacks=ours, plugins=[AtomicCheckpointIO()], enable_model_summary=False,
                           enable_progress_bar=cfg.trainer.get("enable_progress_bar", True) and not lines, profiler=profiler)
    resume_from = str(run.checkpoints / LAST) if run.resumed else None
    if trainer.global_rank == 0:
        if resume_from is not None:
            tidy_for_resume(run.checkpoints)
        root = trainer.strategy.root_device
        record.started(run, f"{trainer.num_devices} x {root.type}" if trainer.num_devices > 1 else str(root), params)
        if cfg.tracking.system_metrics:  # stopped as the run's block ends, before the run is closed
            sampling.enter_context(system_metrics(run.tracking_uri, run.run_id, resumed=run.resumed))
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)  # tensors: no code runs
    _leave_process_group()
    return trainer, profiler


def _check_resumable(cfg: DictConfig) -> DictConfig:
    """`resume=<run id>`: the config the run was started with, once its last checkpoint is known to load; before the
    run is touched, so a checkpoint that cannot be read leaves it as it was."""
    cfg = runs.run_config(cfg, str(cfg.resume))
    last = checkpoint_folder(cfg, str(cfg.resume)) / LAST
    if not last.is_file():
        raise ConfigError(f"resume={cfg.resume}: no checkpoint at {last}; the run never finished an epoch here")
    try:
        load_tensors(last)
    except ModelLoadError as err:
        raise ModelLoadError(f"resume={cfg.resume}: {err}; the run is left as it was") from None
    return cfg


def train(cfg: DictConfig, callbacks: list[Callback] | None = None, tags: Mapping[str, str] | None = None,
          after_fit: Callable[[MlflowClient, str], None] | None = None, end_tags: runs.EndTags | None = None) -> TrainResult | None:
    """Validate, fit, test the best-validation checkpoint once, and record it all in one MLflow run.

    `callbacks` join the standard ones (sweeps add pruning); `tags` are added to the MLflow run (sweeps link trials
    to their parent) and `end_tags(error)` as it closes (a trial's state); `after_fit(client, run_id)` runs on rank 0
    once fit is over, inside the run, so what it raises closes the run (a DDP trial that its pruning callback
    stopped raises TrialPruned there). With `evaluate_test=false` (sweep trials) the test set is not touched.
    Returns None in DDP worker processes other than rank 0. `time/wall_s` is the run's wall time from here to its
    last record.
    """
    started_at = time.perf_counter()
    if cfg.get("resume"):
        cfg = _check_resumable(cfg)
    validate(cfg)
    check_trainer(cfg)
    route_lightning_logs()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule: DigitsDataModule = instantiate(cfg.data)
    datamodule.prepare_data()  # missing or corrupt data fails here, before a run exists
    module = build_module(cfg)
    n_params = count_parameters(module.net)
    choices = group_choices()
    chosen = {group: option for group, option in choices.items() if group in (*GROUPS, "experiment")}  # model=lenet, ...

    with runs.run(cfg, _run_tags(cfg, choices, tags), end_tags=end_tags) as (client, run_id), store_faults(cfg, run_id), \
            ExitStack() as sampling:
        run = record.RunContext.of(cfg, client, run_id)
        trainer, profiler = _fit(cfg, run, module, datamodule, callbacks or [], {Param.N_PARAMS: n_params, **chosen}, sampling)
        if trainer.global_rank != 0:
            return None
        if after_fit is not None:
            after_fit(client, run_id)
        if profiler is not None:
            record_profile(client, run_id, profiler, run.checkpoints)
        # a few chunks an epoch (debug=fast) check the path, not learning: no verdict on chance
        epoch = record.best_epoch(run, judge_chance=not cfg.trainer.get("limit_train_batches"))
        best = trainer.checkpoint_callback.best_model_path  # type: ignore[union-attr]
        if cfg.evaluate_test:
            _test_once(cfg, module, datamodule, trainer.logger, best)  # type: ignore[arg-type]
            record.tested(run, module.net, module.test_outputs, datamodule.tensors["test"], best, epoch, recipe_or_model(cfg))
        return TrainResult(run_id, record.final_metrics(run, started_at), best, n_params, choices)


def overfit_verdict(result: TrainResult, cfg: DictConfig) -> str | None:
    """debug=overfit's one line: whether the model fitted its few training images (the last epoch's train/acc); a
    model that cannot is a failed check (RunFailed, exit 1). None for any other run."""
    if result.choices.get("debug") != "overfit":
        return None
    acc = result.metrics.get(Metric.TRAIN_ACC, float("nan"))
    if acc >= OVERFIT_PASS:
        return f"overfit: {Metric.TRAIN_ACC} {acc:.3f} (pass)"
    raise RunFailed(f"overfit: {Metric.TRAIN_ACC} {acc:.3f} after {cfg.trainer.max_epochs} epochs on {cfg.data.subset} images "
                    f"(fail, under {OVERFIT_PASS}): the model cannot fit them; look at its loss curve, layers and learning rate")


def summary(result: TrainResult, cfg: DictConfig) -> str:
    """What a user needs after `make train`: the numbers and where to look."""
    m: dict[str, Any] = result.metrics
    nan = float("nan")
    return (
        f"run {result.run_id}  recipe={cfg.recipe.name}  params={result.n_params:,}\n"
        f"  {Metric.TEST_ACC}={m.get(Metric.TEST_ACC, nan):.4f}  {Metric.TEST_LOSS}={m.get(Metric.TEST_LOSS, nan):.4f}  "
        f"{Metric.VAL_ACC_BEST}={m.get(Metric.VAL_ACC_BEST, nan):.4f} (epoch {m.get(Metric.BEST_EPOCH, nan):.0f})  "
        f"train time={m.get(Metric.TRAIN_S, nan):.1f}s\n"
        f"  MLflow: {redacted(tracking_uri(cfg))}  experiment={cfg.tracking.experiment}  ({ui_command(cfg)})\n"
        f"  best checkpoint: {result.best_checkpoint}"
    )

"""What a run prints: every log line once, no third-party tips, and where to find the run.

Lightning gives its loggers their own stderr handlers (`lightning` with an `INFO:` prefix) and,
when the root logger already has a handler at import time (Hydra's), also lets them propagate
there: every message appears twice. `route_lightning_logs()` leaves exactly one path.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from digits_bench import tracking

log = logging.getLogger("digits_bench")
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")
# where Lightning's rank_zero_info() records are created (whichever module imported last sets it; mlflow.pytorch
# imports the standalone `pytorch_lightning` package when it is installed, as lightning 2.6 installs it)
RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                     "pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                     "lightning_utilities.core.rank_zero")
OWN_HANDLER = "digits_bench.cli.console"


class LightningNoise(logging.Filter):
    """Drops Lightning's advertisements ("💡 Tip: ... try installing litlogger / litmodels") and the
    repeats of an info line already shown ("GPU available: ..." again for the test Trainer)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Tip:" in message:
            return False
        if record.levelno > logging.INFO:
            return True
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def route_lightning_logs() -> None:
    """One handler for Lightning's messages, plain text, tips and repeats dropped; idempotent.

    With a configured root logger (the Hydra CLI) Lightning's messages propagate to it and
    nowhere else; without one (sweep, compare, bench) the `lightning` logger keeps one plain
    stderr handler of ours, as Lightning would print them.
    """
    for name in RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, LightningNoise) for f in logger.filters):
            logger.addFilter(LightningNoise())
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if h.get_name() != OWN_HANDLER]:
            logger.removeHandler(handler)
        logger.propagate = True
    top = logging.getLogger("lightning")
    own = [h for h in top.handlers if h.get_name() == OWN_HANDLER]
    if logging.getLogger().handlers:
        for handler in own:
            top.removeHandler(handler)
    else:
        if not own:
            handler = logging.StreamHandler(sys.stderr)
            handler.set_name(OWN_HANDLER)
            handler.setFormatter(logging.Formatter("%(message)s"))
            top.addHandler(handler)
        top.propagate = False


def _in_project_root() -> bool:
    return Path.cwd().resolve() == tracking.PROJECT_ROOT and (tracking.PROJECT_ROOT / "Makefile").is_file()


def ui_command(cfg: DictConfig) -> str:
    """The command that shows this store in the MLflow UI, exactly as a user can paste it."""
    uri = tracking.tracking_uri(cfg)
    if not uri.startswith("sqlite:///"):
        return f"open {uri}" if uri.startswith(("http://", "https://")) else f"mlflow ui --backend-store-uri {uri}"
    store = Path(cfg.tracking.store_dir).expanduser().resolve()
    if _in_project_root():  # `make ui` reads the store from DIGITS_BENCH_STORE only if the shell exported it
        return "make ui" if store == tracking.PROJECT_ROOT / "mlruns" else f"make ui STORE={store}"
    return f"mlflow ui --backend-store-uri {uri}"


def run_url(cfg: DictConfig, experiment_id: str, run_id: str) -> str:
    """The run's page: on the server, or on `make ui`'s default address."""
    uri = tracking.tracking_uri(cfg)
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def run_started(cfg: DictConfig, experiment_id: str, run_id: str, checkpoint_dir: Path) -> str:
    """Printed before the first epoch: the id to resume or look up, and where to look."""
    return (f"run {run_id} {'resumed' if cfg.get('resume') else 'started'}  (experiment {cfg.tracking.experiment}, store {tracking.tracking_uri(cfg)})\n"
            f"  watch it: {ui_command(cfg)}  ->  {run_url(cfg, experiment_id, run_id)}\n"
            f"  checkpoints: {checkpoint_dir}")


class ResumeHint(Callback):
    """On Ctrl-C / SIGTERM during fit, say how to continue the run (Lightning then exits)."""

    def __init__(self, run_id: str, checkpoint_dir: Path) -> None:
        self.run_id, self.checkpoint_dir = run_id, checkpoint_dir

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt) or trainer.global_rank != 0:
            return
        if (self.checkpoint_dir / "last.ckpt").is_file():
            log.info("interrupted: run %s is KILLED; continue it from its last finished epoch with "
                     "`python -m digits_bench resume=%s`", self.run_id, self.run_id)
        else:
            log.info("interrupted before the first epoch finished: run %s has no checkpoint to resume; start it again", self.run_id)

    def state_dict(self) -> dict[str, Any]:
        return {}

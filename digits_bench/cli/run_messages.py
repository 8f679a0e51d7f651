"""What a run prints for its user: where to watch it, and how to continue it after Ctrl-C."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from digits_bench.redaction import redacted
from digits_bench.tracking import store, views

log = logging.getLogger("digits_bench")


def _in_project_root() -> bool:
    return Path.cwd().resolve() == store.PROJECT_ROOT and (store.PROJECT_ROOT / "Makefile").is_file()


def ui_command(cfg: DictConfig) -> str:
    """The command that shows this store in the MLflow UI, exactly as a user can paste it (its password: ***)."""
    uri = redacted(store.tracking_uri(cfg))
    if not uri.startswith("sqlite:///"):
        # a server has its UI already: its address is the thing to paste (into a browser; `open` is macOS only)
        return f"browse {uri}" if uri.startswith(("http://", "https://")) else f"mlflow ui --backend-store-uri {uri}"
    folder = Path(cfg.tracking.store_dir).expanduser().resolve()
    if _in_project_root():  # `make ui` reads the store from DIGITS_BENCH_STORE only if the shell exported it
        return "make ui" if folder == store.PROJECT_ROOT / "mlruns" else f"make ui STORE={folder}"
    return f"python -m digits_bench.ui --store {folder}"


def run_url(cfg: DictConfig, experiment_id: str, run_id: str) -> str:
    """The run's page, in Model-training mode."""
    return views.link(views.ui_base(store.tracking_uri(cfg)), experiment_id, run_id)


def run_started(cfg: DictConfig, experiment_id: str, run_id: str, checkpoint_dir: Path, device: str) -> str:
    """Printed before the first epoch: the id to resume or look up, the device it trains on, and where to look."""
    return (f"run {run_id} {'resumed' if cfg.get('resume') else 'started'} on {device}  (experiment {cfg.tracking.experiment}, store {redacted(store.tracking_uri(cfg))})\n"
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

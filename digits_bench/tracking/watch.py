"""Where a user watches a run: the command that shows its store in MLflow's UI, the run's page, and the lines a run
prints as it starts."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from digits_bench.redaction import redacted
from digits_bench.tracking import store, views


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

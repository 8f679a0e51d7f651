"""MLflow bookkeeping around a training run: store, experiment, run lifecycle, params, tags.

The run is created here, before Lightning starts, and closed here: FINISHED
on success, KILLED on an interrupt, FAILED on any error, never left RUNNING.
Lightning's MLFlowLogger only attaches to the run to log the metrics.
"""
from __future__ import annotations

import fcntl
import logging
import os
import platform
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import lightning.pytorch as pl
import torch
from mlflow.entities import Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from digits_bench.config.fingerprint import flatten
from digits_bench.errors import ConfigError, TrackingError

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
ATTACH_ENV = "DIGITS_BENCH_RUN_ID"  # set for DDP worker processes that re-run the entry point


def tracking_uri(cfg: DictConfig) -> str:
    """`tracking.uri` (default: $MLFLOW_TRACKING_URI), else the embedded SQLite store in tracking.store_dir."""
    if cfg.tracking.uri:
        return str(cfg.tracking.uri)
    store = Path(cfg.tracking.store_dir).expanduser().resolve()
    return f"sqlite:///{store / 'mlflow.db'}"


def artifact_root(cfg: DictConfig) -> str | None:
    """Local stores keep artifacts beside the database; a server decides for itself."""
    uri = tracking_uri(cfg)
    if uri.startswith("sqlite:///") or uri.startswith("file:"):
        return (Path(cfg.tracking.store_dir).expanduser().resolve() / "artifacts").as_uri()
    return None


def make_client(cfg: DictConfig) -> MlflowClient:
    uri = tracking_uri(cfg)
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        with store_lock(db):  # creating the client creates or migrates the schema: one process at a time
            enable_wal(db)
            return MlflowClient(tracking_uri=uri)
    if uri.startswith(("http://", "https://")):
        probe_server(uri)
    return MlflowClient(tracking_uri=uri)


@contextmanager
def store_lock(db: Path) -> Iterator[None]:
    """An inter-process lock (a `.lock` file beside the database) around creating or migrating a SQLite store.

    Without it, processes that start together on a new store all run the migrations
    ('table _alembic_tmp_tags already exists', 'database is locked') and can leave it
    half-migrated. A folder we may not write is not ours to migrate: no lock then.
    """
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = open(db.with_name(db.name + ".lock"), "a")
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def probe_server(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when the tracking server cannot be reached."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")  # a server lost mid-run: ~15 s, not ~4 min
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # it answered: reachable (authentication and the rest are MLflow's to report)
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingError(f"cannot reach the MLflow server {uri} ({reason}); start it, or fix or unset "
                            "MLFLOW_TRACKING_URI (or tracking.uri) to use the local store") from None


def enable_wal(db: Path) -> None:
    """Write-ahead logging lets parallel sweep workers read while one writes, instead of 'database is locked'.

    The mode is stored in the file, so setting it once per process is enough.
    """
    db.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db, timeout=60) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


def experiment_id(client: MlflowClient, name: str, artifact_root: str | None) -> str:
    """Get or create the experiment; safe when several processes race to create it."""
    for attempt in range(5):
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(name, artifact_location=f"{artifact_root}/{name}" if artifact_root else None)
        except MlflowException:
            time.sleep(0.2 * (attempt + 1))  # another process created it, or SQLite was busy
    raise RuntimeError(f"could not get or create the MLflow experiment {name!r}")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    commit = out.stdout.strip() or "unknown"
    return commit + ("-dirty" if dirty.stdout.strip() else "")


def device_name(accelerator: str) -> str:
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def source_tags(commit: str) -> dict[str, str]:
    """MLflow's standard source tags, which its UI shows as the run's source, version and user."""
    from mlflow.entities import SourceType
    from mlflow.tracking.context.default_context import _get_source_name, _get_user
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE, MLFLOW_USER

    return {MLFLOW_GIT_COMMIT: commit.removesuffix("-dirty"), MLFLOW_SOURCE_NAME: _get_source_name(),
            MLFLOW_SOURCE_TYPE: SourceType.to_string(SourceType.LOCAL), MLFLOW_USER: _get_user()}


def typed_overrides() -> list[str]:
    """The overrides the user typed (CLI) or passed to compose_config, from Hydra's record of them."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [str(o) for o in HydraConfig.get().overrides.task]


def environment_tags(accelerator: str) -> dict[str, str]:
    commit = git_commit()
    return source_tags(commit) | {
        "git_commit": commit,
        "torch_version": torch.__version__,
        "cuda_version": str(torch.version.cuda),
        "lightning_version": pl.__version__,
        "python_version": platform.python_version(),
        "device": device_name(accelerator),
        "host": platform.node(),
    }


def _is_noise(key: str) -> bool:
    """Hydra's `_target_` class paths and the data files' md5 sums: config.yaml keeps them, the params table need not."""
    last = key.rsplit(".", 1)[-1]
    return (last.startswith("_") and last.endswith("_")) or ".md5." in f".{key}."


def log_config(client: MlflowClient, run_id: str, cfg: DictConfig, extra: Mapping[str, Any]) -> None:
    """Every resolved config value a person compares runs by as a param (MLflow allows 6000 chars), plus
    config.yaml in full."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    params = {k: v for k, v in flatten(resolved).items() if not _is_noise(k)} | {k: str(v) for k, v in extra.items()}
    items = [Param(k, v[:6000]) for k, v in sorted(params.items())]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100])
    client.log_text(run_id, OmegaConf.to_yaml(resolved), "config.yaml")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so a terminated run is marked KILLED, not left RUNNING."""
    try:
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def store_hint(uri: str) -> str:
    """What to change: the local store's folder, or the server address."""
    if uri.startswith("sqlite:///"):
        return "set DIGITS_BENCH_STORE to a writable folder with free space, or MLFLOW_TRACKING_URI to a server"
    return "check the server and MLFLOW_TRACKING_URI (or tracking.uri)"


def store_error(uri: str, err: BaseException) -> TrackingError:
    first_line = (str(err).strip().splitlines() or [""])[0][:200]
    return TrackingError(f"cannot write the MLflow store {uri} ({type(err).__name__}: {first_line}); {store_hint(uri)}")


def open_run(cfg: DictConfig, tags: Mapping[str, str]) -> tuple[MlflowClient, str]:
    """Create a run, or reopen `cfg.resume`'s; a store that cannot be written is one clear error."""
    uri = tracking_uri(cfg)
    try:
        client = make_client(cfg)
        if cfg.get("resume"):
            client.update_run(cfg.resume, status=RunStatus.to_string(RunStatus.RUNNING))
            return client, str(cfg.resume)
        exp_id = experiment_id(client, cfg.tracking.experiment, artifact_root(cfg))
        return client, client.create_run(exp_id, run_name=cfg.tracking.run_name, tags=dict(tags)).info.run_id
    except (OSError, sqlite3.Error, MlflowException) as err:
        raise store_error(uri, err) from None


def run_config(cfg: DictConfig, run_id: str) -> DictConfig:
    """The config a run was started with (its config.yaml), to continue it exactly; a FINISHED run has nothing left."""
    missing = ConfigError(f"resume={run_id}: no such run with a config.yaml in {tracking_uri(cfg)}")
    try:
        client = make_client(cfg)
        status = client.get_run(run_id).info.status
    except (OSError, sqlite3.Error, MlflowException):
        raise missing from None
    if status == RunStatus.to_string(RunStatus.FINISHED):
        raise ConfigError(f"resume={run_id}: that run already FINISHED (trained, tested and stored); "
                          "nothing to continue — start a new run instead")
    try:
        text = client.download_artifacts(run_id, "config.yaml")
    except (OSError, sqlite3.Error, MlflowException):
        raise missing from None
    loaded = OmegaConf.load(text)
    loaded.resume = run_id
    return loaded


@contextmanager
def mlflow_run(cfg: DictConfig, tags: Mapping[str, str]) -> Iterator[tuple[MlflowClient, str]]:
    """Create the run (or, in a DDP worker, attach to the launcher's run) and always close it."""
    attached = os.environ.get(ATTACH_ENV)
    if attached:  # a DDP rank > 0 re-running the entry point: log nothing of its own
        yield make_client(cfg), attached
        return
    client, run_id = open_run(cfg, tags)
    os.environ[ATTACH_ENV] = run_id
    status = RunStatus.to_string(RunStatus.FAILED)
    try:
        with sigterm_as_interrupt():
            yield client, run_id
        status = RunStatus.to_string(RunStatus.FINISHED)
    except (KeyboardInterrupt, SystemExit):
        status = RunStatus.to_string(RunStatus.KILLED)
        raise
    finally:
        os.environ.pop(ATTACH_ENV, None)
        close_run(cfg, client, run_id, status)


def close_run(cfg: DictConfig, client: MlflowClient, run_id: str, status: str) -> None:
    """Set the run's final status; a store that fails now (a full disk) must not hide the error that ended the run."""
    try:
        if not cfg.tracking.synchronous:
            client._tracking_client.store.flush_async_logging()  # every queued metric lands before the run is closed
        client.set_terminated(run_id, status)
    except (OSError, sqlite3.Error, MlflowException) as err:
        if status == RunStatus.to_string(RunStatus.FINISHED):
            raise store_error(tracking_uri(cfg), err) from None
        log.warning("could not mark run %s %s: %s", run_id, status, str(err).splitlines()[0] if str(err) else type(err).__name__)

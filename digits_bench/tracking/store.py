"""The MLflow store: where it is, a client for it, its experiments, and the tags that say where a run ran.

The embedded SQLite store is created and migrated under an inter-process lock and switched to
write-ahead logging, so processes that start together (sweep workers, DDP ranks) share it safely;
a tracking server that cannot be reached fails in seconds.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import platform
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig
from sqlalchemy.exc import SQLAlchemyError

from digits_bench.errors import FULL_BELOW, TrackingError, disk_full
from digits_bench.names import EXPERIMENT_KIND, Tag

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# what a store that cannot be written raises (SQLAlchemy wraps sqlite3's errors in its own)
STORE_ERRORS = (OSError, sqlite3.Error, SQLAlchemyError, MlflowException)


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


def checkpoint_folder(cfg: DictConfig, run_id: str) -> Path:
    """Where a run's checkpoints live (`paths.checkpoint_dir/<run id>`): outside the store, so a run resumes from them
    and a report never copies them."""
    return Path(cfg.paths.checkpoint_dir).expanduser().resolve() / run_id


def store_exists(cfg: DictConfig) -> bool:
    """Whether there is a store to read: a local SQLite file that exists, or a server (which says for itself). A
    command that only reads asks this first, so that looking does not create a store."""
    uri = tracking_uri(cfg)
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).is_file()


def make_client(cfg: DictConfig) -> MlflowClient:
    uri = tracking_uri(cfg)
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        with store_lock(db):  # creating the client creates or migrates the schema: one process at a time
            create_whole(db)
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


def create_whole(db: Path) -> None:
    """A new SQLite store is created complete or not at all: its schema is built in a hidden file beside it,
    which is renamed into place once every migration has run. A disk that fills up meanwhile leaves no store
    (and the error), never a half-migrated one that fails every later run."""
    if db.exists():
        return
    building = db.with_name(f".{db.name}.{uuid.uuid4().hex[:12]}.new")  # a new name each time: MLflow caches a store per URI
    try:
        store = MlflowClient(tracking_uri=f"sqlite:///{building}")._tracking_client.store  # creates and migrates
        store.engine.dispose()
        os.replace(building, db)
    finally:
        for leftover in (building, *(building.with_name(building.name + end) for end in ("-journal", "-wal", "-shm"))):
            leftover.unlink(missing_ok=True)


def probe_server(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when the tracking server cannot be reached; a login
    written into the URI is refused (the URI is printed and recorded in places; MLflow reads the login from its own
    variables)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.username is not None or parts.password is not None:
        bare = urllib.parse.urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))
        raise TrackingError(f"the MLflow URI carries a login: use {bare} and put the user and password in "
                            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
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
    """Get or create the experiment, with its kind and the saved view of its runs that printed links open; safe when
    several processes race to create it. An experiment made before it carried them gets them on first use."""
    from digits_bench.tracking.views import RUNS, RUNS_VIEW, VIEW_TAG, save_view

    key, kind = EXPERIMENT_KIND
    for attempt in range(5):
        found = client.get_experiment_by_name(name)
        if found is not None:
            if found.tags.get(key) != kind:
                client.set_experiment_tag(found.experiment_id, key, kind)
            if VIEW_TAG + RUNS_VIEW not in found.tags:  # the runs table the links open (`views.RUNS`)
                save_view(client, found.experiment_id, RUNS_VIEW, RUNS)
            return found.experiment_id
        try:
            created = client.create_experiment(name, artifact_location=f"{artifact_root}/{name}" if artifact_root else None,
                                               tags={key: kind})
            save_view(client, created, RUNS_VIEW, RUNS)
            return created
        except MlflowException:
            time.sleep(0.2 * (attempt + 1))  # another process created it, or SQLite was busy
    raise RuntimeError(f"could not get or create the MLflow experiment {name!r}")


def store_hint(uri: str) -> str:
    """What to change: the local store's folder, or the server address."""
    if uri.startswith("sqlite:///"):
        return "set DIGITS_BENCH_STORE to a writable folder with free space, or MLFLOW_TRACKING_URI to a server"
    return "check the server and MLFLOW_TRACKING_URI (or tracking.uri)"


def _free_bytes(folder: Path) -> float:
    """Free space under `folder`; infinite where it cannot be measured (the folder is not there, or not a folder)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return float("inf")


def store_error(uri: str, err: BaseException) -> TrackingError:
    first_line = (str(err).strip().splitlines() or [""])[0][:200]
    if uri.startswith("sqlite:///") and _free_bytes(Path(uri.removeprefix("sqlite:///")).parent) < FULL_BELOW:
        # SQLite calls a full disk under an existing store's journal "disk I/O error": the free space says which
        return TrackingError(disk_full(f"the MLflow store {uri} ({first_line})", f"or {store_hint(uri)}"))
    return TrackingError(f"cannot write the MLflow store {uri} ({type(err).__name__}: {first_line}); {store_hint(uri)}")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    commit = out.stdout.strip() or "unknown"
    return commit + ("-dirty" if dirty.stdout.strip() else "")


def device_name(accelerator: str) -> str:
    import torch

    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def source_name() -> str:
    """The command a run came from, as its user typed it (`python -m digits_bench.sweep`, `digits-bench compare`),
    for the UI's Source column; MLflow's own guess names the script, `__main__.py` for every verb."""
    from mlflow.tracking.context.default_context import _get_source_name

    script = Path(sys.argv[0])
    if script.name == "digits-bench":  # a run exists only once the verb was known: a first word that is no override
        verb = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") and "=" not in sys.argv[1] else "train"
        return f"digits-bench {verb}"
    try:
        parts = script.resolve().relative_to(PROJECT_ROOT / "digits_bench").with_suffix("").parts
    except ValueError:
        return _get_source_name()
    return " ".join(["python -m", ".".join(["digits_bench", *parts]).removesuffix(".__main__")])


def source_tags(commit: str) -> dict[str, str]:
    """MLflow's standard source tags, which its UI shows as the run's source, version and user."""
    from mlflow.entities import SourceType
    from mlflow.tracking.context.default_context import _get_user
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE, MLFLOW_USER

    return {MLFLOW_GIT_COMMIT: commit.removesuffix("-dirty"), MLFLOW_SOURCE_NAME: source_name(),
            MLFLOW_SOURCE_TYPE: SourceType.to_string(SourceType.LOCAL), MLFLOW_USER: _get_user()}


def environment_tags(accelerator: str) -> dict[str, str]:
    """Where and with what a run ran: commit, library versions, device, host."""
    import lightning.pytorch as pl
    import torch

    commit = git_commit()
    return source_tags(commit) | {
        Tag.GIT_COMMIT: commit,
        "torch_version": torch.__version__,
        "cuda_version": str(torch.version.cuda),
        "lightning_version": pl.__version__,
        "python_version": platform.python_version(),
        Tag.DEVICE: device_name(accelerator),
        "host": platform.node(),
    }

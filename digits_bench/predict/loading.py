"""Where a model comes from: a tracked run, the best run of an experiment, a registered MLflow Model, or a checkpoint file.

A run carries everything needed: `config.yaml` (the resolved config, which rebuilds the exact
network and its normalisation) and `checkpoints/*.ckpt` (the weights). A bare checkpoint needs
its config from beside it, from `--config`, or from the run its folder is named after.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from digits_bench.config import compose_config
from digits_bench.config.stored import read_stored
from digits_bench.errors import ModelLoadError
from digits_bench.names import Metric
from digits_bench.predict.inference import load_net

if TYPE_CHECKING:
    from digits_bench.models.digits_net import DigitsNet

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
RANK_METRIC = Metric.VAL_ACC  # models are chosen on validation, never on the test set
PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@dataclass
class LoadedModel:
    module: DigitsNet  # in eval mode, on the CPU: raw pixels in, logits out
    cfg: DictConfig
    source: str               # for people: "run <id>" or the checkpoint path
    run_id: str | None
    checkpoint: str           # the checkpoint's file name


def store_client(uri: str | None = None) -> MlflowClient:
    """The store `python -m digits_bench` logs to (or `uri`); never creates an empty one."""
    if uri is None:
        from digits_bench import tracking  # imports Lightning: only when the store is not given

        uri = tracking.tracking_uri(compose_config([]))
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ModelLoadError(f"no MLflow store at {uri.removeprefix('sqlite:///')} "
                             "(set DIGITS_BENCH_STORE or MLFLOW_TRACKING_URI, or pass --tracking-uri)")
    if uri.startswith(("http://", "https://")):
        from digits_bench.tracking.store import probe_server

        probe_server(uri)  # seconds, not MLflow's minutes of retries, when it cannot be reached
    return MlflowClient(tracking_uri=uri)


def best_run(client: MlflowClient, experiment: str) -> str:
    """The FINISHED run of `experiment` with a stored model and the highest (final) validation accuracy.

    A run that died between FINISHED and its checkpoint upload (or trained with
    tracking.log_checkpoint=false) has nothing to load: it is passed over.
    """
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ModelLoadError(f"no experiment {experiment!r} in the MLflow store {client.tracking_uri}")
    runs = client.search_runs([found.experiment_id], filter_string=f"attributes.status = 'FINISHED' and metrics.`{RANK_METRIC}` >= 0",
                              order_by=[f"metrics.`{RANK_METRIC}` DESC"], max_results=1000)
    for run in runs:
        if _checkpoints(client, run.info.run_id):
            return run.info.run_id
    if runs:
        _check_artifacts_exist(runs[0])
        raise ModelLoadError(f"experiment {experiment!r} has no FINISHED run with a stored model (checkpoints/*.ckpt)")
    raise ModelLoadError(f"experiment {experiment!r} has no FINISHED run with a {RANK_METRIC} metric")


def _check_artifacts_exist(run) -> None:
    """A store moved to another folder keeps its runs' absolute artifact paths: say so, not "no model"."""
    artifacts = run.info.artifact_uri
    path = Path(urllib.parse.urlparse(artifacts).path)
    root = path.parents[2] if len(path.parents) > 3 else path  # <store>/artifacts/<experiment>/<run id>/artifacts
    if artifacts.startswith("file://") and root.name == "artifacts" and not root.exists():
        raise ModelLoadError(f"run {run.info.run_id}: its artifacts should be at {path}, "
                             "which does not exist (a moved store? its runs record their artifacts' absolute path: move it back)")


def _checkpoints(client: MlflowClient, run_id: str) -> list[str]:
    """The run's checkpoint artifacts, best-validation first."""
    artifacts = [a.path for a in client.list_artifacts(run_id, "checkpoints")]
    return sorted((p for p in artifacts if p.endswith(".ckpt")), key=lambda p: (not Path(p).name.startswith("best"), p))


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow draws a progress bar on stderr for each download unless told not to."""
    previous = os.environ.get(PROGRESS_BAR)
    os.environ[PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PROGRESS_BAR, None)
        else:
            os.environ[PROGRESS_BAR] = previous


def _download(client: MlflowClient, run_id: str, path: str, into: str) -> Path:
    """One artifact into a folder, without MLflow's progress bar on stderr."""
    try:
        with _no_progress_bar():
            return Path(client.download_artifacts(run_id, path, into))
    except (MlflowException, OSError) as err:
        raise ModelLoadError(f"run {run_id}: cannot fetch artifact {path} ({str(err).splitlines()[0]})") from None


def from_run(client: MlflowClient, run_id: str) -> LoadedModel:
    """Weights and config from the run's artifacts; the best-validation checkpoint when there are several."""
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ModelLoadError(f"no run {run_id!r} in the MLflow store {client.tracking_uri}") from None
        raise ModelLoadError(f"cannot read run {run_id} from {client.tracking_uri}: {str(err).splitlines()[0][:200]}") from None
    _check_artifacts_exist(run)
    try:
        checkpoints = _checkpoints(client, run_id)
    except (MlflowException, OSError) as err:
        raise ModelLoadError(f"run {run_id}: cannot list its artifacts ({str(err).splitlines()[0][:200]})") from None
    if not checkpoints:
        raise ModelLoadError(f"run {run_id} has no model: no checkpoints/*.ckpt artifact "
                             "(trained with tracking.log_checkpoint=false, or it did not finish)")
    with tempfile.TemporaryDirectory(prefix="digits_bench_predict_") as tmp:
        cfg = load_config(_download(client, run_id, "config.yaml", tmp))
        checkpoint = _download(client, run_id, checkpoints[0], tmp)
        return LoadedModel(load_net(cfg, checkpoint), cfg, f"run {run_id}", run_id, checkpoint.name)


def from_model_uri(uri: str, tracking_uri: str | None = None) -> LoadedModel:
    """An MLflow Model: `models:/NAME/VERSION` (or `models:/NAME@alias`, `models:/<model id>`, `runs:/ID/model`).

    Its MLmodel file (YAML) names the run that logged it; the weights come from that run's checkpoint, read as
    tensors, and its config.yaml, allow-listed: the Model's own pickle would run whatever code it holds."""
    from mlflow.models import get_model_info
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    client = store_client(tracking_uri)
    try:
        with _use_tracking_uri(client.tracking_uri), _no_progress_bar():
            run_id = get_model_info(uri).run_id
    except (MlflowException, OSError) as err:
        raise ModelLoadError(f"no MLflow Model {uri} in the store {client.tracking_uri} "
                             f"({str(err).splitlines()[0][:200]}); register one with python -m digits_bench.register") from None
    if not run_id:
        raise ModelLoadError(f"MLflow Model {uri} names no run: its weights cannot be read without running its pickle")
    loaded = from_run(client, run_id)
    return LoadedModel(loaded.module, loaded.cfg, uri, run_id, loaded.checkpoint)


def from_checkpoint(path: Path, config: Path | None = None, tracking_uri: str | None = None) -> LoadedModel:
    """A checkpoint file with `config`, else the config.yaml beside it, else its run's config.yaml."""
    if not path.is_file():
        raise ModelLoadError(f"no checkpoint file {path}")
    if config is not None and not config.is_file():
        raise ModelLoadError(f"no config file {config}")
    beside = path.parent / "config.yaml"
    run_id = path.parent.name if RUN_ID.match(path.parent.name) else None
    if config is not None or beside.is_file():
        cfg = load_config(config or beside)
    elif run_id is not None:
        cfg = _config_of_run(run_id, tracking_uri, path)
    else:
        raise ModelLoadError(f"no config for checkpoint {path}: put the run's config.yaml next to it or pass --config PATH")
    return LoadedModel(load_net(cfg, path), cfg, str(path), run_id, path.name)


def _config_of_run(run_id: str, tracking_uri: str | None, checkpoint: Path) -> DictConfig:
    try:
        client = store_client(tracking_uri)
        with tempfile.TemporaryDirectory(prefix="digits_bench_predict_") as tmp:
            return load_config(_download(client, run_id, "config.yaml", tmp))
    except ModelLoadError:
        raise ModelLoadError(f"no config for checkpoint {checkpoint}: none beside it, run {run_id} has none in the "
                             "MLflow store; pass --config PATH") from None


def load_config(path: Path) -> DictConfig:
    """A resolved run config, allow-listed (config.stored) and checked for the keys a model needs."""
    cfg = read_stored(path, path.name)
    missing = [k for k in ("model", "optimizer", "schedule", "aug", "data.mean", "data.std") if OmegaConf.select(cfg, k) is None]
    if not isinstance(cfg, DictConfig) or missing:
        raise ModelLoadError(f"{path.name} is not a digits_bench run config (missing {', '.join(missing) or 'everything'})")
    return cfg

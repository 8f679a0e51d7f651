"""The trained network as an MLflow Model: registrable, loadable with `mlflow.pytorch.load_model`, servable.

The logged module takes what a user has, pixel values 0-255 shaped (N, 28, 28) or (N, 1, 28, 28), and
returns the 10 logits: the run's normalisation travels with the weights (`models.digits_net.DigitsNet`). Its
class lives in this package, so loading needs `digits_bench` importable (as for every model here).
"""
from __future__ import annotations

import contextlib
import re
import logging
from typing import Any, Iterator

import mlflow
import numpy as np
import torch
from mlflow.entities import Metric as MlflowMetric
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service.utils import _use_tracking_uri
from torch import nn

from digits_bench.models.digits_net import DigitsNet, inference_copy  # noqa: F401  (models logged before it moved name it here)
from digits_bench.names import Metric

ARTIFACT = "model"
# per-epoch metrics: the logged model has the tested epoch's, never another epoch's
PER_EPOCH = ("train/", Metric.EPOCH_S, Metric.IMAGES_PER_S, Metric.LR, Metric.EPOCH)


def model_name(label: str) -> str:
    """A LoggedModel's name from a recipe or model name: MLflow refuses / : . % and quotes in one."""
    return re.sub(r"""[/:.%"']""", "-", label) or ARTIFACT


def log_model(tracking_uri: str, run_id: str, net: nn.Module, mean: float, std: float, images: torch.Tensor, epoch: int = 0,
              name: str = ARTIFACT) -> Any:
    """Log the network into the run under `model/` as the LoggedModel `name` (the recipe's or the model's, so
    MLflow's Models tab tells them apart), with a signature inferred from real test images.
    The logged model carries the metrics of the weights it holds: `epoch`'s (the best epoch, whose
    checkpoint was tested), then the run's once-only metrics (the test's, val/acc_best, best_epoch).
    The model is created in its run's experiment first: left to itself, MLflow files it under the
    process's active experiment (Default, artifacts in ./mlruns), not its run's.

    Requirements are given, not inferred: inferring them imports and probes the environment in a
    subprocess (seconds per run); this model needs torch only (and this package for its class).
    """
    model = inference_copy(net, mean, std)
    example = images[:8].cpu().float().numpy().astype(np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(example)).numpy()
    signature = infer_signature(example, logits)
    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}", "numpy"]
    quiet = logging.getLogger("mlflow")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # no "model logged" chatter on the console of every run
    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    logged = client.create_logged_model(run.info.experiment_id, name=model_name(name), source_run_id=run_id, params=run.data.params)
    try:
        with _use_tracking_uri(tracking_uri), _requirements_trusted():
            info = mlflow.pytorch.log_model(model, name=ARTIFACT, run_id=run_id, model_id=logged.model_id, signature=signature,
                                            step=epoch, pip_requirements=requirements, serialization_format="pickle")
    finally:
        quiet.setLevel(level)
    _link_run_metrics(client, run_id, logged.model_id)
    return info


@contextlib.contextmanager
def _requirements_trusted() -> Iterator[None]:
    """MLflow checks given requirements against the installed packages by mapping every file of every installed
    distribution to its module (~1.5 s a process on 2 cores, a sixth of a tiny run's start-up): ours are read from
    this environment (`torch.__version__`, `mlflow.__version__`), so they match by construction. The check is
    skipped where MLflow 3.17 makes it, and only while this model is logged."""
    from mlflow.utils import environment

    check = getattr(environment, "warn_dependency_requirement_mismatches", None)
    if check is None:  # another MLflow: its own behaviour
        yield
        return
    environment.warn_dependency_requirement_mismatches = lambda requirements: None  # type: ignore[attr-defined]
    try:
        yield
    finally:
        environment.warn_dependency_requirement_mismatches = check  # type: ignore[attr-defined]


def _link_run_metrics(client: MlflowClient, run_id: str, model_id: str) -> None:
    """MLflow links the metrics at the logged step; the ones it left (logged once, at the last epoch's step)
    are linked at their own step, with their own value and time."""
    linked = {m.key for m in client.get_logged_model(model_id).metrics or []}
    latest = [max(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
              for key in client.get_run(run_id).data.metrics if key not in linked]
    client.log_batch(run_id, metrics=[MlflowMetric(m.key, m.value, m.timestamp, m.step, model_id=model_id, run_id=run_id)
                                      for m in latest if not m.key.startswith(PER_EPOCH)])

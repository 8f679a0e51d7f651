"""Parent MLflow runs that group child runs — a sweep's trials, a Hydra multirun's jobs — the way MLflow's UI nests them.

One code path for both, so a sweep and a multirun look alike in MLflow: a parent
run named after what launched it, children tagged `mlflow.parentRunId`, and the
parent closed with a status that says how the group ended.
"""
from __future__ import annotations

from typing import Mapping

from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from digits_bench import tracking

PARENT_TAG = "mlflow.parentRunId"


def open_parent(client: MlflowClient, cfg: DictConfig, name: str, tags: Mapping[str, str]) -> str:
    """Create a RUNNING parent run in the config's experiment and return its id."""
    experiment = tracking.experiment_id(client, cfg.tracking.experiment, tracking.artifact_root(cfg))
    run_tags = tracking.environment_tags("auto") | {"mlflow.runName": name} | dict(tags)
    return client.create_run(experiment, tags=run_tags).info.run_id


def child_tags(parent_run_id: str) -> dict[str, str]:
    """The tags that nest a run under its parent."""
    return {PARENT_TAG: parent_run_id}


def children(client: MlflowClient, parent_run_id: str) -> list:
    """The parent's child runs, of any status."""
    parent = client.get_run(parent_run_id)
    return client.search_runs([parent.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'")


def outcome(client: MlflowClient, parent_run_id: str) -> str:
    """How a group ended when its launcher could not say: KILLED if a child was stopped, else FAILED."""
    statuses = {run.info.status for run in children(client, parent_run_id)}
    return RunStatus.to_string(RunStatus.KILLED if "KILLED" in statuses else RunStatus.FAILED)


def close_parent(client: MlflowClient, parent_run_id: str, status: str, tags: Mapping[str, str] | None = None) -> None:
    """Tag the parent with its summary and end it with `status` (FINISHED, FAILED or KILLED)."""
    for key, value in (tags or {}).items():
        client.set_tag(parent_run_id, key, value)
    client.set_terminated(parent_run_id, status)

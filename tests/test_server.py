"""The team set-up: PostgreSQL + an MLflow tracking server on loopback, a 2-worker sweep against them."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from digits_bench import server

from .conftest import ROOT
from .test_sweep import TINY_BASE

pytestmark = [pytest.mark.fit, pytest.mark.skipif(not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")),
                                                   reason="PostgreSQL not installed (make system-deps installs it)")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def stack():
    state = Path(tempfile.mkdtemp(prefix="digits-bench-server-"))  # outside root-only pytest folders: postgres must reach it
    info = server.start(state, pg_port=free_port(), mlflow_port=free_port())
    try:
        yield info
    finally:
        server.stop(state)
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.slow
def test_two_worker_sweep_against_postgres_and_mlflow_server(stack: server.ServerInfo, tmp_path: Path):
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump({
        "name": "team", "base": TINY_BASE, "n_trials": 3, "pruner": {"type": "none"},
        "space": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 0.3, "log": True}},
    }))
    env = os.environ | {"MLFLOW_TRACKING_URI": stack.tracking_uri}
    storage = stack.database_url("optuna")
    result = subprocess.run([sys.executable, "-m", "digits_bench.sweep", str(path), "--storage", storage, "--workers", "2"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]

    study = optuna.load_study(study_name="team", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert len({t.params["optimizer.lr"] for t in study.trials}) == 3  # workers do not replay one sampler stream

    client = MlflowClient(stack.tracking_uri)  # over HTTP
    experiment = client.get_experiment_by_name("digits_bench")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`sweep.study` = 'team'")
    trials = [r for r in runs if r.data.tags["sweep.role"] == "trial"]
    (parent,) = [r for r in runs if r.data.tags["sweep.role"] == "parent"]
    assert len(trials) == 3 and all(r.info.status == "FINISHED" for r in trials)
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {r.info.run_id for r in trials}
    assert parent.info.status == "FINISHED" and parent.data.tags["best_run_id"] in {r.info.run_id for r in trials}
    assert client.list_artifacts(parent.info.run_id)[0].path == "sweep.yaml"  # artifacts served by the server

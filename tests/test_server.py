"""The team set-up: PostgreSQL + an MLflow tracking server on loopback, a 2-worker sweep against them; nobody in
without the generated passwords."""
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
    # outside root-only pytest folders (postgres must reach it), and with a space and a `;` that pg_ctl's shell must not split
    state = Path(tempfile.mkdtemp(prefix="digits bench;server-"))
    try:
        yield server.start(state, pg_port=free_port(), mlflow_port=free_port())
    finally:
        server.stop(state)
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.slow
def test_two_worker_sweep_against_postgres_and_mlflow_server(stack: server.ServerInfo, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump({
        "name": "team", "base": TINY_BASE, "n_trials": 3, "pruner": {"type": "none"},
        "space": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 0.3, "log": True}},
    }))
    storage = stack.database_url("optuna")
    env = os.environ | stack.client_env() | {"OPTUNA_STORAGE": storage}  # what `make server` printed to export
    result = subprocess.run([sys.executable, "-m", "digits_bench.sweep", str(path), "--workers", "2"],  # no password typed
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'the study: optuna-dashboard "$OPTUNA_STORAGE"' in result.stdout

    study = optuna.load_study(study_name="team", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3, result.stdout[-3000:] + result.stderr[-3000:]
    assert len({t.params["optimizer.lr"] for t in study.trials}) == 3  # workers do not replay one sampler stream

    for name, value in stack.client_env().items():
        monkeypatch.setenv(name, value)
    client = MlflowClient(stack.tracking_uri)  # over HTTP, as the admin
    experiment = client.get_experiment_by_name("digits_bench")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`sweep.study` = 'team'")
    trials = [r for r in runs if r.data.tags["sweep.role"] == "trial"]
    (parent,) = [r for r in runs if r.data.tags["sweep.role"] == "parent"]
    assert len(trials) == 3 and all(r.info.status == "FINISHED" for r in trials)
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {r.info.run_id for r in trials}
    assert parent.info.status == "FINISHED" and parent.data.tags["best_run_id"] in {r.info.run_id for r in trials}
    assert client.list_artifacts(parent.info.run_id)[0].path == "sweep.yaml"  # artifacts served by the server

    password = stack.credentials()["postgres_password"]
    assert password not in result.stdout + result.stderr  # never printed by a worker
    assert not [(k, v) for r in runs for k, v in {**r.data.tags, **r.data.params}.items() if password in v]  # nor stored


def test_nobody_gets_in_without_the_generated_passwords(stack: server.ServerInfo, monkeypatch: pytest.MonkeyPatch):
    import psycopg2
    from mlflow.exceptions import MlflowException

    state = Path(stack.state_dir)
    assert oct(state.stat().st_mode & 0o777) == "0o700" and oct((state / "credentials.json").stat().st_mode & 0o777) == "0o600"
    socket_file = state / f".s.PGSQL.{stack.pg_port}"
    assert socket_file.exists() and socket_file.stat().st_mode & 0o077 == 0  # not world-writable: nobody else's
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(host="127.0.0.1", port=stack.pg_port, user="postgres", dbname="postgres", connect_timeout=5)
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(host="127.0.0.1", port=stack.pg_port, user="postgres", password="guess", dbname="postgres")

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    with pytest.raises(MlflowException, match="401|nauthori"):  # an anonymous write is refused
        MlflowClient(stack.tracking_uri).create_experiment("anonymous")
    for name, value in stack.client_env().items():
        monkeypatch.setenv(name, value)
    assert MlflowClient(stack.tracking_uri).create_experiment("team-admin")  # the printed credentials get in


def test_no_password_is_on_any_command_line(stack: server.ServerInfo):
    """Every local user can read every process's command line (`ps -eo args`): the MLflow server, its workers and
    PostgreSQL get their URIs and passwords through the environment and files only their owner reads."""
    secrets = [value for key, value in stack.credentials().items() if "password" in key]
    assert secrets
    command_lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command_lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    assert any("mlflow" in line and "server" in line for line in command_lines)  # the server is among them
    assert [line for line in command_lines if any(secret in line for secret in secrets)] == []

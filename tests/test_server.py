"""The team set-up (docs/team-server.md), through its commands: PostgreSQL + an MLflow tracking server on loopback,
started from a private folder (as root: PostgreSQL's account cannot enter it) and by a user without root; a 2-worker
sweep against them; nobody in without the generated passwords; stopped and started with everything still there;
backed up, wiped, restored."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
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


def server_command(*args: str, user: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m digits_bench.server ARGS`, as docs/team-server.md has it typed (as `user`, where given)."""
    command = [sys.executable, "-m", "digits_bench.server", *args]
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180, env=env or os.environ)


def exported(stdout: str) -> dict[str, str]:
    """The variables `start` (or `restore`) printed to export."""
    lines = [line.removeprefix("export ").split("  #")[0] for line in stdout.splitlines() if line.startswith("export ")]
    return {name: value.strip("'") for name, _, value in (line.partition("=") for line in lines)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    """Started from a folder only its owner may enter (a 0700 home, as root's is), in a state dir whose name has a
    space and a `;` that pg_ctl's shell must not split."""
    home = tmp_path_factory.mktemp("home")
    home.chmod(0o700)
    state = home / "digits bench;server"
    result = server_command("start", "--state-dir", str(state), "--pg-port", str(free_port()), "--port", str(free_port()))
    assert result.returncode == 0, result.stderr[-2000:]
    try:
        yield server.load(state)
    finally:
        server.stop(state)
        shutil.rmtree(server.pg_dir(state), ignore_errors=True)


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
    socket_file = server.pg_dir(state) / f".s.PGSQL.{stack.pg_port}"  # as root: in PostgreSQL's account's folder
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


@pytest.mark.slow
def test_stopped_and_started_it_keeps_everything_and_a_backup_brings_it_back_after_a_wipe(stack: server.ServerInfo,
                                                                                          tmp_path: Path):
    state = Path(stack.state_dir)
    assert (state / "credentials.json").stat().st_mode & 0o777 == 0o600
    if os.geteuid() == 0:  # PostgreSQL's data in its own account's folder, not in the private one
        assert server.pg_dir(state).owner() == "postgres" and not (state / "pgdata").exists()

    def history(env: dict[str, str]) -> tuple:
        client = MlflowClient(env["MLFLOW_TRACKING_URI"])
        (run,) = client.search_runs([client.get_experiment_by_name("kept").experiment_id])
        notes = Path(client.download_artifacts(run.info.run_id, "notes.txt", str(tmp_path / f"got{time.time()}")))
        study = optuna.load_study(study_name="kept", storage=env["OPTUNA_STORAGE"])
        return (run.info.run_id, run.info.status, [m.value for m in client.get_metric_history(run.info.run_id, "val/acc")],
                notes.read_text(), [t.value for t in study.trials])

    env = stack.client_env() | {"OPTUNA_STORAGE": stack.database_url("optuna")}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        client = MlflowClient(env["MLFLOW_TRACKING_URI"])
        run = client.create_run(client.create_experiment("kept"))
        for step, value in enumerate((0.5, 0.75)):
            client.log_metric(run.info.run_id, "val/acc", value, step=step)
        client.log_text(run.info.run_id, "a note", "notes.txt")
        client.set_terminated(run.info.run_id)
        optuna.create_study(study_name="kept", storage=env["OPTUNA_STORAGE"]).optimize(lambda trial: 0.25, n_trials=1)
        kept = history(env)
        assert kept[1:] == ("FINISHED", [0.5, 0.75], "a note", [0.25])

        # the commands of docs/team-server.md, in-process (the fixture started the stack through the command line)
        assert server.status(state)[0].startswith(f"MLflow server {stack.tracking_uri} (user digits_bench): running since ")
        server.stop(state)
        assert server.status(state)[0].startswith("stopped: the MLflow server; PostgreSQL stopped")
        assert server.start(state, pg_port=stack.pg_port, mlflow_port=stack.mlflow_port).client_env() == stack.client_env()
        assert history(env) == kept  # every run, metric, artifact and study, as they were

        saved = tmp_path / "backup"
        server.backup(state, saved)
        assert saved.stat().st_mode & 0o777 == 0o700 and not saved.with_name("backup.partial").exists()
        with pytest.raises(server.ServerError, match=f"^{saved} exists; back up into a new folder$"):
            server.backup(state, saved)
        with pytest.raises(server.ServerError, match="is not a backup"):
            server.restore(state, tmp_path)

        server.stop(state)  # a wipe: the state dir and PostgreSQL's data gone; the restore starts a new stack for it
        shutil.rmtree(server.pg_dir(state), ignore_errors=True)
        shutil.rmtree(state)
        back = server_command("restore", str(saved), "--state-dir", str(state), "--pg-port", str(stack.pg_port),
                              "--port", str(stack.mlflow_port))
        assert back.returncode == 0, back.stderr[-2000:]
        restored = exported(back.stdout)
        assert restored["MLFLOW_TRACKING_PASSWORD"] == env["MLFLOW_TRACKING_PASSWORD"]  # the backup's login
        assert restored["OPTUNA_STORAGE"] != env["OPTUNA_STORAGE"]  # a new cluster, a new PostgreSQL password
        for name, value in restored.items():
            patch.setenv(name, value)
        assert history(restored) == kept


@pytest.mark.slow
def test_a_user_without_root_runs_postgresql_as_itself(tmp_path: Path):
    """The same start by an account without root (made here), from its own 0700 home: PostgreSQL and the MLflow server
    run as that account; stop stops both."""
    if os.geteuid() != 0:
        pytest.skip("creating an account needs root")
    python = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    site = Path(optuna.__file__).parents[1]
    if not python.is_file() or any(not os.access(p, os.R_OK | os.X_OK) or p.stat().st_mode & 0o005 != 0o005
                                   for p in (ROOT, site, *ROOT.parents[:-1], *site.parents[:-1])):
        pytest.skip(f"another account cannot run this checkout's Python ({python}, {site}, {ROOT})")
    user = "digits_bench_user"
    if subprocess.run(["id", user], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", user], check=True)
    home = Path(f"~{user}").expanduser()
    home.chmod(0o700)
    state = home / "server"
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": f"{ROOT}:{site}", "LANG": "C.UTF-8"}
    command = ["runuser", "-u", user, "--", str(python), "-m", "digits_bench.server"]
    try:
        started = subprocess.run([*command, "start", "--state-dir", str(state), "--pg-port", str(free_port()),
                                  "--port", str(free_port())], capture_output=True, text=True, env=env, timeout=180)
        assert started.returncode == 0, started.stderr[-2000:]
        postmaster = int((state / "pgdata" / "postmaster.pid").read_text().split()[0])
        mlflow = server.load(state).mlflow_pid
        owners = {subprocess.run(["ps", "-o", "user=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
                  for pid in (postmaster, mlflow)}
        assert owners == {user}
    finally:
        stopped = subprocess.run([*command, "stop", "--state-dir", str(state)], capture_output=True, text=True, env=env)
        shutil.rmtree(state, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stderr

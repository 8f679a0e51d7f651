"""`python -m digits_bench.ui [--store DIR] [--port N]` (`make ui`): MLflow's UI on a local store, quiet, ready in
seconds, and a link that opens on the runs.

Every MLflow server the harness starts (this one, and the team server of `digits_bench.server`) is started by
`start_server`: one uvicorn worker unless asked for more, no access log, no server-side job runner (MLflow's
GenAI jobs: eight processes that serve nothing a training run uses), no usage telemetry (as everywhere in the
harness, unless MLFLOW_DISABLE_TELEMETRY=false), Python's warnings off. Its own output goes to a log file, not the console.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Sequence

from digits_bench.cli.entry import command
from digits_bench.errors import BadInput


class ServerError(BadInput, RuntimeError):
    """An MLflow server (or the team's tracking stack) cannot start or be found: a set-up to fix, not the code."""


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an MLflow server: quiet and private, unless the user's environment says otherwise."""
    quiet = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # telemetry: off for the whole harness (digits_bench/__init__.py)
    return quiet | os.environ | {"PYTHONWARNINGS": "ignore"} | (extra or {})


def start_server(backend_uri: str, host: str, port: int, log: Path, *, workers: int = 1, options: Sequence[str] = (),
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `mlflow server` on `backend_uri` in a session of its own (stopped as a group), its output in `log`.
    The store's URI goes through the environment (MLflow's own variables), not the command line: a PostgreSQL URI
    holds its password, and any local user can read a command line (`ps -eo args`), never another's environment."""
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    command_line = [mlflow, "server", "--host", host, "--port", str(port), "--workers", str(workers),
                    "--uvicorn-opts", "--no-access-log", *options]
    env = {"MLFLOW_BACKEND_STORE_URI": backend_uri, "MLFLOW_REGISTRY_STORE_URI": backend_uri} | (env or {})
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        return subprocess.Popen(command_line, stdout=output, stderr=output, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=server_env(env))


def wait_ready(url: str, seconds: float, process: subprocess.Popen, log: Path) -> None:
    """Return once `url` answers (any HTTP status); a server that exits or stays silent is one error naming its log."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            last = (log.read_text(errors="replace").strip().splitlines() or ["(nothing)"])[-1][:200]
            raise ServerError(f"the MLflow server exited with status {process.returncode} ({last}); its log: {log}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.3)
    raise ServerError(f"{url} did not answer within {seconds:.0f} s; its log: {log}")


def runs_link(backend_uri: str, base: str, experiment: str) -> str:
    """The experiment's runs in their saved view, or the experiments page while it does not exist yet."""
    from mlflow.tracking import MlflowClient

    from digits_bench.tracking.views import RUNS_VIEW, link

    found = MlflowClient(tracking_uri=backend_uri).get_experiment_by_name(experiment)
    return link(base, found.experiment_id, view=RUNS_VIEW) if found else link(base)


@command
def main(argv: list[str]) -> None:
    from digits_bench.config import compose_config
    from digits_bench.signals import interrupts

    cfg = compose_config([])
    parser = argparse.ArgumentParser(prog="python -m digits_bench.ui", description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(cfg.tracking.store_dir),
                        help="the store's folder (default: $DIGITS_BENCH_STORE, else mlruns)")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    args = parser.parse_args(argv)
    store = Path(args.store).expanduser().resolve()
    db = store / "mlflow.db"
    if not db.is_file():
        raise ServerError(f"no MLflow store at {db}; train a run first (make train), or point --store (make ui STORE=) "
                          "at the folder that holds mlflow.db")
    backend = f"sqlite:///{db}"
    log = store / "ui.log"
    process = start_server(backend, args.host, args.port, log)
    try:
        with interrupts():  # SIGTERM as Ctrl-C: either way the server (a session of its own) is stopped below
            base = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
            wait_ready(f"{base}/health", 120, process, log)
            print(f"MLflow UI on {store}: {runs_link(backend, base, str(cfg.tracking.experiment))}", flush=True)
            print(f"  (its log: {log}; Ctrl-C stops it)", flush=True)
            process.wait()
        raise ServerError(f"the MLflow server exited with status {process.returncode}; its log: {log}")
    except KeyboardInterrupt:  # Ctrl-C is how a UI is meant to stop: nothing to report
        return
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()

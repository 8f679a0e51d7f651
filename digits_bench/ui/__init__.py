"""`python -m digits_bench.ui [--store DIR] [--port N]` (`make ui`): MLflow's UI on a local store, quiet, ready in
seconds, and a link that opens on the runs.

Every MLflow server the harness starts (this one, and the team server of `digits_bench.server`) is started by
`start_server`: one uvicorn worker unless asked for more, no access log, no server-side job runner (MLflow's
GenAI jobs: eight processes that serve nothing a training run uses), no usage telemetry (as everywhere in the
harness, unless MLFLOW_DISABLE_TELEMETRY=false), Python's warnings off. Its own output goes to a log file, not the console.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Sequence

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
    # this interpreter's MLflow (not a console script beside it: an interpreter run with PYTHONPATH has none)
    command_line = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port), "--workers", str(workers),
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

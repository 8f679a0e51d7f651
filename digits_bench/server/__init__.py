"""`python -m digits_bench.server start|stop|status`: a team's tracking stack on this machine.

PostgreSQL (Debian's package) holds MLflow's runs and Optuna's studies in two databases; an
MLflow tracking server on top of it stores and serves the artifacts. Workers anywhere then
use `MLFLOW_TRACKING_URI=http://HOST:PORT` and `--storage postgresql://…/optuna`.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from digits_bench.cli.entry import command
from digits_bench.errors import BadInput

STATE_FILE = "server.json"


@dataclass
class ServerInfo:
    state_dir: str
    host: str
    pg_port: int
    mlflow_port: int
    mlflow_pid: int

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    def database_url(self, name: str) -> str:
        # explicit driver: SQLAlchemy 2.1 would otherwise look for psycopg 3
        return f"postgresql+psycopg2://postgres@{self.host}:{self.pg_port}/{name}"


class ServerError(BadInput, RuntimeError):
    """The tracking stack cannot start or be found: a broken set-up, nothing to fix in the code."""


def _pg_bin(tool: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    if not found:
        raise ServerError("PostgreSQL is not installed; run `apt-get install postgresql` (make server does)")
    return found[-1]


def _as_postgres(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` user the package creates."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


def _wait_http(url: str, seconds: float, process: subprocess.Popen) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise ServerError(f"the MLflow server exited with {process.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise ServerError(f"{url} did not answer within {seconds:.0f} s")


def start(state_dir: Path, host: str = "127.0.0.1", pg_port: int = 5433, mlflow_port: int = 5005) -> ServerInfo:
    """Initialise (once) and start PostgreSQL, create the databases, start the MLflow server."""
    state_dir = state_dir.resolve()
    pgdata = state_dir / "pgdata"
    state_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        os.chown(state_dir, postgres.pw_uid, postgres.pw_gid)
    if not (pgdata / "PG_VERSION").exists():
        _as_postgres([_pg_bin("initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust"])
    options = f"-p {pg_port} -k {state_dir} -c listen_addresses={host}"
    running = subprocess.run(["runuser", "-u", "postgres", "--"] * (os.geteuid() == 0) + [_pg_bin("pg_ctl"), "-D", str(pgdata), "status"],
                             capture_output=True).returncode == 0
    if not running:
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(pgdata), "-l", str(state_dir / "postgres.log"), "-o", options, "-w", "start"])
    import psycopg2

    connection = psycopg2.connect(host=host, port=pg_port, user="postgres", dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        for name in ("mlflow", "optuna"):
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                cursor.execute(f"CREATE DATABASE {name}")
    connection.close()
    info = ServerInfo(str(state_dir), host, pg_port, mlflow_port, 0)
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    log = open(state_dir / "mlflow.log", "ab")
    process = subprocess.Popen(
        [mlflow_bin, "server", "--backend-store-uri", info.database_url("mlflow"), "--artifacts-destination",
         str(state_dir / "artifacts"), "--serve-artifacts", "--host", host, "--port", str(mlflow_port), "--workers", "2"],
        stdout=log, stderr=log, start_new_session=True,
        # MLflow's server-side job runner (eight huey processes, for GenAI jobs) serves nothing a training run uses
        env=os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")},
    )
    info.mlflow_pid = process.pid
    (state_dir / STATE_FILE).write_text(json.dumps(asdict(info)))
    _wait_http(f"{info.tracking_uri}/health", 90, process)
    return info


def load(state_dir: Path) -> ServerInfo:
    path = state_dir.resolve() / STATE_FILE
    if not path.is_file():
        raise ServerError(f"no server state in {state_dir}; start one with `make server`")
    return ServerInfo(**json.loads(path.read_text()))


def stop(state_dir: Path) -> None:
    info = load(state_dir)
    try:
        os.killpg(info.mlflow_pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    pgdata = Path(info.state_dir) / "pgdata"
    if (pgdata / "postmaster.pid").exists():
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"])
    (Path(info.state_dir) / STATE_FILE).unlink(missing_ok=True)


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m digits_bench.server", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--state-dir", default=".server", help="where PostgreSQL data, artifacts and logs live")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for other machines)")
    parser.add_argument("--pg-port", type=int, default=5433)
    parser.add_argument("--port", type=int, default=5005, help="MLflow server port")
    args = parser.parse_args(argv)
    state = Path(args.state_dir)
    try:
        if args.action == "start":
            info = start(state, args.host, args.pg_port, args.port)
        elif args.action == "stop":
            stop(state)
            print("stopped")
            return
        else:
            info = load(state)
    except subprocess.CalledProcessError as err:  # PostgreSQL's tools: their last words say why
        raise ServerError(f"{err} {(err.stderr or '').strip()[-300:]}") from None
    print(f"export MLFLOW_TRACKING_URI={info.tracking_uri}")
    print(f"# Optuna storage for sweeps: python -m digits_bench.sweep SWEEP --storage {info.database_url('optuna')}")


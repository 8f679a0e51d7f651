"""`python -m digits_bench.server start|stop|status`: a team's tracking stack on this machine, secure by default.

PostgreSQL (Debian's package) holds MLflow's runs and Optuna's studies in two databases; an
MLflow tracking server on top of it stores and serves the artifacts. Nobody gets in without a
password: PostgreSQL's `postgres` role has a generated one (scram-sha-256, over TCP only, from the
address it serves: loopback, or any with `--host 0.0.0.0`; its socket is its owner's alone), and the
MLflow server runs its basic-auth app with a generated admin. The credentials live in the state dir's
credentials.json (mode 0600) and are printed at start as the variables workers export.
"""
from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shlex
import signal
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

from digits_bench.ui import ServerError, start_server, wait_ready

STATE_FILE = "server.json"
CREDENTIALS_FILE = "credentials.json"
MLFLOW_ADMIN = "digits_bench"


@dataclass
class ServerInfo:
    state_dir: str
    host: str
    pg_port: int
    mlflow_port: int
    mlflow_pid: int

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.connect_host}:{self.mlflow_port}"

    def credentials(self) -> dict[str, str]:
        return json.loads((Path(self.state_dir) / CREDENTIALS_FILE).read_text())

    def database_url(self, name: str) -> str:
        # explicit driver: SQLAlchemy 2.1 would otherwise look for psycopg 3
        password = quote(self.credentials()["postgres_password"], safe="")
        return f"postgresql+psycopg2://postgres:{password}@{self.connect_host}:{self.pg_port}/{name}"

    @property
    def connect_host(self) -> str:
        """Where this machine reaches the servers: a wildcard address listens everywhere, loopback included."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "*") else self.host

    def client_env(self) -> dict[str, str]:
        """What a worker exports to log to the MLflow server."""
        secrets = self.credentials()
        return {"MLFLOW_TRACKING_URI": f"http://{self.connect_host}:{self.mlflow_port}",
                "MLFLOW_TRACKING_USERNAME": MLFLOW_ADMIN, "MLFLOW_TRACKING_PASSWORD": secrets["mlflow_password"]}


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


def _credentials(state_dir: Path) -> dict[str, str]:
    """The stack's passwords: generated once, kept in credentials.json, readable by its owner only."""
    path = state_dir / CREDENTIALS_FILE
    if path.is_file():
        return json.loads(path.read_text())
    secrets_ = {"postgres_password": secrets.token_urlsafe(24), "mlflow_password": secrets.token_urlsafe(24),
                "flask_secret_key": secrets.token_urlsafe(32)}  # signs the auth app's CSRF tokens
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(secrets_, handle)
    return secrets_


def _hba(host: str) -> str:
    """pg_hba.conf: password logins over TCP from the address served; none over the socket, none without a password."""
    sources = ["127.0.0.1/32", "::1/128"] if host in ("127.0.0.1", "localhost", "::1") else ["0.0.0.0/0", "::/0"]
    return "".join(f"host all postgres {source} scram-sha-256\n" for source in sources)


def _as_owner(state_dir: Path, path: Path, text: str, mode: int) -> None:
    """Write a file the postgres user reads (as root, PostgreSQL's tools run as `postgres`)."""
    path.write_text(text)
    path.chmod(mode)
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        os.chown(path, postgres.pw_uid, postgres.pw_gid)


def start(state_dir: Path, host: str = "127.0.0.1", pg_port: int = 5433, mlflow_port: int = 5005) -> ServerInfo:
    """Initialise (once) and start PostgreSQL, create the databases, start the MLflow server with authentication."""
    state_dir = state_dir.resolve()
    pgdata = state_dir / "pgdata"
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o700)  # the socket, the data, the logs and the credentials: nobody else's
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        os.chown(state_dir, postgres.pw_uid, postgres.pw_gid)
    if (pgdata / "PG_VERSION").exists() and not (state_dir / CREDENTIALS_FILE).is_file():
        raise ServerError(f"the PostgreSQL data in {pgdata} predates passwords (it trusts every local login); stop it "
                          f"(make server-stop) and move {state_dir} away to start a secured stack")
    secrets_ = _credentials(state_dir)
    if not (pgdata / "PG_VERSION").exists():
        pwfile = state_dir / ".pwfile"
        _as_owner(state_dir, pwfile, secrets_["postgres_password"], 0o600)
        try:
            _as_postgres([_pg_bin("initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={pwfile}"])
        finally:
            pwfile.unlink(missing_ok=True)
    _as_owner(state_dir, pgdata / "pg_hba.conf", _hba(host), 0o600)
    # pg_ctl hands these to a shell: each value quoted, so a folder with a space (or a `;`) stays one argument
    options = " ".join(["-p", str(pg_port), "-k", shlex.quote(str(state_dir)), "-c", shlex.quote(f"listen_addresses={host}"),
                        "-c", "unix_socket_permissions=0700", "-c", "password_encryption=scram-sha-256"])
    running = subprocess.run(["runuser", "-u", "postgres", "--"] * (os.geteuid() == 0) + [_pg_bin("pg_ctl"), "-D", str(pgdata), "status"],
                             capture_output=True).returncode == 0
    if not running:
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(pgdata), "-l", str(state_dir / "postgres.log"), "-o", options, "-w", "start"])
    import psycopg2

    info = ServerInfo(str(state_dir), host, pg_port, mlflow_port, 0)
    connection = psycopg2.connect(host=info.connect_host, port=pg_port, user="postgres", password=secrets_["postgres_password"],
                                  dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        for name in ("mlflow", "optuna", "mlflow_auth"):
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                cursor.execute(f"CREATE DATABASE {name}")
    connection.close()
    auth_config = state_dir / "basic_auth.ini"
    auth_config.write_text(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = {info.database_url('mlflow_auth')}\n"
                           f"admin_username = {MLFLOW_ADMIN}\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                           # a password hash (PBKDF2) per request slows every logged metric: check each login once a minute
                           "auth_cache_ttl_seconds = 60\n")
    auth_config.chmod(0o600)
    log = state_dir / "mlflow.log"
    process = start_server(
        info.database_url("mlflow"), host, mlflow_port, log, workers=2,
        options=["--app-name", "basic-auth", "--artifacts-destination", str(state_dir / "artifacts"), "--serve-artifacts"],
        env={
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": secrets_["mlflow_password"],  # read once, when the auth store is new
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets_["flask_secret_key"],
        },
    )
    info.mlflow_pid = process.pid
    (state_dir / STATE_FILE).write_text(json.dumps(asdict(info)))
    wait_ready(f"{info.tracking_uri}/health", 90, process, log)
    return info


def load(state_dir: Path) -> ServerInfo:
    path = state_dir.resolve() / STATE_FILE
    if not path.is_file():
        raise ServerError(f"no server state in {state_dir}; start one with `make server`")
    return ServerInfo(**json.loads(path.read_text()))


def stop(state_dir: Path) -> None:
    """Stop the MLflow server and PostgreSQL; also what a start that failed halfway left running."""
    state_dir = state_dir.resolve()
    pgdata = state_dir / "pgdata"
    if (state_dir / STATE_FILE).is_file():
        try:
            os.killpg(load(state_dir).mlflow_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    elif not (pgdata / "postmaster.pid").exists():
        raise ServerError(f"no server state in {state_dir}; start one with `make server`")
    if (pgdata / "postmaster.pid").exists():
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"])
    (state_dir / STATE_FILE).unlink(missing_ok=True)


"""`python -m digits_bench.server start|stop|status|backup|restore`: a team's tracking stack on this machine, secure by default.

PostgreSQL (Debian's package) holds MLflow's runs and Optuna's studies in two databases; an
MLflow tracking server on top of it stores and serves the artifacts. Nobody gets in without a
password: PostgreSQL's `postgres` role has a generated one (scram-sha-256, over TCP only, from the
address it serves: loopback, or any with `--host 0.0.0.0`; its socket is its owner's alone), and the
MLflow server runs its basic-auth app with a generated admin. The credentials live in the state dir's
credentials.json (mode 0600) and are printed at start as the variables workers export.

Started by a user without root, PostgreSQL runs as that user, its data in the state dir. Started as root, it runs as
the `postgres` account, which may not enter the state dir (a home of mode 0700, a mktemp folder): its data, socket and
log then live in a folder of that account's own, one per state dir (`pg_dir`). Stopped and started again, the stack
keeps every run, metric, artifact and study; `backup` and `restore` move them (PostgreSQL's own dump and restore).
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import pwd
import secrets
import shlex
import signal
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

from digits_bench.ui import ServerError, start_server, wait_ready

STATE_FILE = "server.json"
CREDENTIALS_FILE = "credentials.json"
MLFLOW_ADMIN = "digits_bench"
DATABASES = ("mlflow", "optuna", "mlflow_auth")
PG_HOME = "digits_bench"  # as root: <postgres's home>/digits_bench/<state dir's key>/ holds PostgreSQL's data
MLFLOW_LOGIN = ("mlflow_password", "flask_secret_key")  # what a backup keeps of the credentials: the restored auth
# database knows the admin by that password; PostgreSQL's own password belongs to the cluster, not to a database


@dataclass
class ServerInfo:
    state_dir: str
    host: str
    pg_port: int
    mlflow_port: int
    mlflow_pid: int
    started: float = field(default_factory=time.time)  # when `start` last started the MLflow server (epoch seconds)

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


def pg_dir(state_dir: Path) -> Path:
    """The folder of PostgreSQL's data (pgdata/), socket and log for `state_dir`: the state dir itself where PostgreSQL
    runs as this user (no root, or a stack made before this layout), else a folder of the `postgres` account's own,
    named by the state dir's path, so a state dir anywhere (a 0700 home) works."""
    state_dir = state_dir.resolve()
    if os.geteuid() != 0 or (state_dir / "pgdata" / "PG_VERSION").exists():
        return state_dir
    key = hashlib.sha256(str(state_dir).encode()).hexdigest()[:16]
    return Path(pwd.getpwnam("postgres").pw_dir) / PG_HOME / key


def _postgres_owns(folder: Path) -> None:
    """As root: make `folder` (and the folders up to the postgres account's home) that account's, mode 0700."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    postgres = pwd.getpwnam("postgres")
    for path in (folder, *[p for p in folder.parents if str(p).startswith(postgres.pw_dir + "/")]):
        os.chown(path, postgres.pw_uid, postgres.pw_gid)
        path.chmod(0o700)


def _as_postgres(command: list[str], log: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run a PostgreSQL tool: as the `postgres` account when root (PostgreSQL refuses root), else as this user. A
    failure is one line: the tool, its last words, and where its log is."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    try:
        return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)
    except subprocess.CalledProcessError as err:
        raise ServerError(_failed(command, err.stderr or err.stdout, log)) from None


def _failed(command: list[str], output: str, log: Path | None) -> str:
    tool = Path(next(word for word in command if word.startswith("/") or word.startswith("pg_"))).name
    words = [line.strip() for line in (output or "").splitlines() if line.strip() and not line.startswith(("HINT", "DETAIL"))]
    why = words[-1] if words else "no message"
    if log is not None and log.is_file():
        lines = [line for line in log.read_text(errors="replace").splitlines() if "FATAL" in line or "ERROR" in line]
        why = lines[-1].split(":  ", 1)[-1] if lines else why
    hint = "; another server holds that port: pick another with --pg-port" if "already in use" in why else ""
    return f"PostgreSQL's {tool} failed: {why}{hint}" + (f" (its log: {log})" if log is not None else "")


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


def _as_owner(path: Path, text: str, mode: int) -> None:
    """Write a file the postgres user reads (as root, PostgreSQL's tools run as `postgres`)."""
    path.write_text(text)
    path.chmod(mode)
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        os.chown(path, postgres.pw_uid, postgres.pw_gid)


def start(state_dir: Path, host: str = "127.0.0.1", pg_port: int = 5433, mlflow_port: int = 5005) -> ServerInfo:
    """Initialise (once) and start PostgreSQL, create the databases, start the MLflow server with authentication."""
    state_dir = state_dir.resolve()
    if (state_dir / STATE_FILE).is_file() and _alive(load(state_dir).mlflow_pid):
        return load(state_dir)  # running already: what it serves, as a start would print it
    info = _start_postgres(state_dir, host, pg_port, mlflow_port)
    _start_mlflow(info)
    return info


def _start_postgres(state_dir: Path, host: str, pg_port: int, mlflow_port: int) -> ServerInfo:
    """PostgreSQL initialised (once) and running, with the stack's databases; the MLflow server not yet."""
    home = pg_dir(state_dir)
    pgdata = home / "pgdata"
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o700)  # the credentials, the artifacts and the logs: nobody else's
    if home != state_dir:
        _postgres_owns(home)
    elif os.geteuid() == 0:  # a stack made before PostgreSQL's data moved out of the state dir as root
        postgres = pwd.getpwnam("postgres")
        os.chown(state_dir, postgres.pw_uid, postgres.pw_gid)
    if (pgdata / "PG_VERSION").exists() and not (state_dir / CREDENTIALS_FILE).is_file():
        raise ServerError(f"PostgreSQL's data for {state_dir} is in {pgdata}, but its credentials "
                          f"({state_dir / CREDENTIALS_FILE}) are gone; put them back, or remove {home} to start empty")
    secrets_ = _credentials(state_dir)
    if not (pgdata / "PG_VERSION").exists():
        pwfile = home / ".pwfile"
        _as_owner(pwfile, secrets_["postgres_password"], 0o600)
        try:
            _as_postgres([_pg_bin("initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={pwfile}"])
        finally:
            pwfile.unlink(missing_ok=True)
    _as_owner(pgdata / "pg_hba.conf", _hba(host), 0o600)
    # pg_ctl hands these to a shell: each value quoted, so a folder with a space (or a `;`) stays one argument
    options = " ".join(["-p", str(pg_port), "-k", shlex.quote(str(home)), "-c", shlex.quote(f"listen_addresses={host}"),
                        "-c", "unix_socket_permissions=0700", "-c", "password_encryption=scram-sha-256"])
    if not _postgres_running(state_dir):
        log = home / "postgres.log"
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(pgdata), "-l", str(log), "-o", options, "-w", "start"], log=log)
    info = ServerInfo(str(state_dir), host, pg_port, mlflow_port, 0)
    with _admin(info) as cursor:
        for name in DATABASES:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                cursor.execute(f"CREATE DATABASE {name}")
    auth_config = state_dir / "basic_auth.ini"
    auth_config.write_text(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = {info.database_url('mlflow_auth')}\n"
                           f"admin_username = {MLFLOW_ADMIN}\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                           # a password hash (PBKDF2) per request slows every logged metric: check each login once a minute
                           "auth_cache_ttl_seconds = 60\n")
    auth_config.chmod(0o600)
    return info


@contextmanager
def _admin(info: ServerInfo) -> Iterator[Any]:
    """A cursor on PostgreSQL's `postgres` database as its admin, each statement committed as it runs."""
    import psycopg2

    connection = psycopg2.connect(host=info.connect_host, port=info.pg_port, user="postgres",
                                  password=info.credentials()["postgres_password"], dbname="postgres")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.close()


def _postgres_running(state_dir: Path) -> bool:
    pgdata = pg_dir(state_dir) / "pgdata"
    if not (pgdata / "PG_VERSION").exists():
        return False
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*as_postgres, _pg_bin("pg_ctl"), "-D", str(pgdata), "status"], capture_output=True).returncode == 0


def _start_mlflow(info: ServerInfo) -> None:
    """The MLflow server on the running PostgreSQL, its state written once it answers."""
    state_dir = Path(info.state_dir)
    secrets_ = info.credentials()
    auth_config = state_dir / "basic_auth.ini"
    log = state_dir / "mlflow.log"
    process = start_server(
        info.database_url("mlflow"), info.host, info.mlflow_port, log, workers=2,
        options=["--app-name", "basic-auth", "--artifacts-destination", str(state_dir / "artifacts"), "--serve-artifacts"],
        env={
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": secrets_["mlflow_password"],  # read once, when the auth store is new
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets_["flask_secret_key"],
        },
    )
    info.mlflow_pid, info.started = process.pid, time.time()
    (state_dir / STATE_FILE).write_text(json.dumps(asdict(info)))
    wait_ready(f"{info.tracking_uri}/health", 90, process, log)


def load(state_dir: Path) -> ServerInfo:
    path = state_dir.resolve() / STATE_FILE
    if not path.is_file():
        raise ServerError(f"no server state in {state_dir}; start one with `make server`")
    return ServerInfo(**json.loads(path.read_text()))


def stop(state_dir: Path) -> None:
    """Stop the MLflow server and PostgreSQL; also what a start that failed halfway left running. The data stays."""
    state_dir = state_dir.resolve()
    pgdata = pg_dir(state_dir) / "pgdata"
    if (state_dir / STATE_FILE).is_file():
        _stop_mlflow(load(state_dir))
    elif not (pgdata / "postmaster.pid").exists():
        raise ServerError(f"no server state in {state_dir}; start one with `make server`")
    if (pgdata / "postmaster.pid").exists():
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"])
    (state_dir / STATE_FILE).unlink(missing_ok=True)


def _alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _stop_mlflow(info: ServerInfo) -> None:
    """SIGTERM to the MLflow server's process group, and wait (10 s at most) while its workers close their connections."""
    try:
        os.killpg(info.mlflow_pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        if not _alive(info.mlflow_pid):
            return
        time.sleep(0.1)


def status(state_dir: Path) -> list[str]:
    """What runs for `state_dir`, where, and since when; a stopped stack says where its data is and how to start it."""
    state_dir = state_dir.resolve()
    pgdata = pg_dir(state_dir) / "pgdata"
    if not (pgdata / "PG_VERSION").exists():
        raise ServerError(f"no server in {state_dir}; start one with `make server`")
    start_it = f"python -m digits_bench.server start --state-dir {shlex.quote(str(state_dir))}"
    if not (state_dir / STATE_FILE).is_file():
        running = "running" if _postgres_running(state_dir) else "stopped"
        return [f"stopped: the MLflow server; PostgreSQL {running}; the data: {pgdata} and {state_dir / 'artifacts'}",
                f"start it with: {start_it}"]
    info = load(state_dir)
    since = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(info.started))
    mlflow = (f"running since {since} (pid {info.mlflow_pid})" if _alive(info.mlflow_pid) else
              f"not running (it was started {since}; see {state_dir / 'mlflow.log'})")
    postgres = "running" if _postgres_running(state_dir) else f"not running (see {pg_dir(state_dir) / 'postgres.log'})"
    return [f"MLflow server {info.tracking_uri} (user {MLFLOW_ADMIN}): {mlflow}",
            f"PostgreSQL {info.connect_host}:{info.pg_port}: {postgres}; its data: {pgdata}",
            f"artifacts: {state_dir / 'artifacts'}; credentials: {state_dir / CREDENTIALS_FILE}"]


def _pg_client(info: ServerInfo, tool: str, database: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """pg_dump / pg_restore over TCP with the stack's password (in the environment, not on the command line), as this
    user: they read and write through our pipes, so the backup folder needs no access by the postgres account."""
    command = [_pg_bin(tool), "-h", info.connect_host, "-p", str(info.pg_port), "-U", "postgres", "-d", database, *args]
    env = os.environ | {"PGPASSWORD": info.credentials()["postgres_password"]}
    try:
        return subprocess.run(command, check=True, capture_output=True, env=env, **kwargs)
    except subprocess.CalledProcessError as err:
        raise ServerError(_failed(command, (err.stderr or b"").decode(errors="replace"), None)) from None


def backup(state_dir: Path, target: Path) -> list[str]:
    """`target`/: each database as PostgreSQL's custom-format dump, the artifacts, and the MLflow login the dumped auth
    database knows. Written beside `target` and renamed into place: a backup is whole or not there."""
    info = load(state_dir)
    target = target.resolve()
    if target.exists():
        raise ServerError(f"{target} exists; back up into a new folder")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700, parents=True)
    try:
        for name in DATABASES:
            (partial / f"{name}.dump").write_bytes(_pg_client(info, "pg_dump", name, "-Fc").stdout)
        artifacts = Path(info.state_dir) / "artifacts"
        if artifacts.is_dir():
            shutil.copytree(artifacts, partial / "artifacts", symlinks=True)
        login = {key: info.credentials()[key] for key in MLFLOW_LOGIN}
        _write_private(partial / "mlflow_login.json", json.dumps(login))
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return [f"backed up {', '.join(DATABASES)} and the artifacts into {target} (mode 0700: it holds the MLflow login)"]


def restore(state_dir: Path, source: Path, host: str = "127.0.0.1", pg_port: int = 5433, mlflow_port: int = 5005) -> ServerInfo:
    """Replace the stack's databases, artifacts and MLflow login with `source`'s (a `backup`); a stack that is not
    running (a new machine, a wiped state dir) is started for it, on `host` and the ports given. Each database is
    restored under a new name first; only when all three are whole does the MLflow server stop and they take the
    places of the old ones: a restore that fails leaves the stack as it was."""
    state_dir, source = state_dir.resolve(), source.resolve()
    missing = [f"{name}.dump" for name in DATABASES if not (source / f"{name}.dump").is_file()]
    if missing or not (source / "mlflow_login.json").is_file():
        raise ServerError(f"{source} is not a backup (no {', '.join(missing) or 'mlflow_login.json'}); make one with "
                          "`python -m digits_bench.server backup DIR`")
    running = (state_dir / STATE_FILE).is_file() and _alive(load(state_dir).mlflow_pid)
    info = load(state_dir) if running else _start_postgres(state_dir, host, pg_port, mlflow_port)
    with _admin(info) as cursor:
        for name in DATABASES:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}_restoring")
            cursor.execute(f"CREATE DATABASE {name}_restoring")
        try:
            for name in DATABASES:
                _pg_client(info, "pg_restore", f"{name}_restoring", "--no-owner", "--exit-on-error",
                           input=(source / f"{name}.dump").read_bytes())
        except BaseException:
            for name in DATABASES:
                cursor.execute(f"DROP DATABASE IF EXISTS {name}_restoring")
            raise
        artifacts, incoming = state_dir / "artifacts", state_dir / "artifacts.restoring"
        shutil.rmtree(incoming, ignore_errors=True)
        if (source / "artifacts").is_dir():
            shutil.copytree(source / "artifacts", incoming, symlinks=True)
        else:
            incoming.mkdir()
        if running:
            _stop_mlflow(info)
        for name in DATABASES:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cursor.execute(f"ALTER DATABASE {name}_restoring RENAME TO {name}")
    old = artifacts.with_name("artifacts.old")
    shutil.rmtree(old, ignore_errors=True)
    if artifacts.exists():
        artifacts.rename(old)
    incoming.rename(artifacts)
    shutil.rmtree(old, ignore_errors=True)
    _write_private(state_dir / CREDENTIALS_FILE, json.dumps(info.credentials() | json.loads((source / "mlflow_login.json").read_text())))
    _start_mlflow(info)
    return info


def _write_private(path: Path, text: str) -> None:
    """`path` with `text`, readable by its owner only, replaced whole (written beside it, then renamed)."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    partial.rename(path)

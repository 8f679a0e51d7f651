"""The command line of `python -m digits_bench.server`; what it does is its package's docstring."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import digits_bench.server as package
from digits_bench.entry import command
from digits_bench.server import CREDENTIALS_FILE, MLFLOW_ADMIN, load, start, stop
from digits_bench.sweep import STORAGE_ENV
from digits_bench.tracking import views
from digits_bench.ui import ServerError


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m digits_bench.server", description=package.__doc__.splitlines()[0])
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
    if args.action == "start":  # the secrets once, as a worker exports them; `status` names where they are
        for name, value in info.client_env().items():
            print(f"export {name}={value}")
        print(f"export {STORAGE_ENV}='{info.database_url('optuna')}'  # the sweeps' study storage (`sweep --storage`)")
        print(f"# (kept in {Path(info.state_dir) / CREDENTIALS_FILE}, readable by you only)")
        print(f"# its UI asks for that login (user {MLFLOW_ADMIN}, MLFLOW_TRACKING_PASSWORD): {views.link(info.tracking_uri)}")
    else:
        print(f"MLflow server {info.tracking_uri} (user {MLFLOW_ADMIN}), PostgreSQL {info.connect_host}:{info.pg_port}; "
              f"credentials in {Path(info.state_dir) / CREDENTIALS_FILE}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

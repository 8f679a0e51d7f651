"""The command line of `python -m digits_bench.server`; what it does is its package's docstring."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import digits_bench.server as package
from digits_bench.entry import command
from digits_bench.server import CREDENTIALS_FILE, MLFLOW_ADMIN, backup, restore, start, status, stop
from digits_bench.sweep import STORAGE_ENV
from digits_bench.tracking import views


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m digits_bench.server", description=package.__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "stop", "status", "backup", "restore"))
    parser.add_argument("folder", nargs="?", type=Path, help="backup: a new folder to write; restore: a backup's folder")
    parser.add_argument("--state-dir", default=".server", help="where PostgreSQL data, artifacts and logs live")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for other machines)")
    parser.add_argument("--pg-port", type=int, default=5433)
    parser.add_argument("--port", type=int, default=5005, help="MLflow server port")
    args = parser.parse_args(argv)
    state = Path(args.state_dir)
    if (args.action in ("backup", "restore")) != (args.folder is not None):
        parser.error(f"{args.action} takes a folder: {args.action} DIR" if args.folder is None else f"{args.action} takes no folder")
    if args.action == "stop":
        stop(state)
        print("stopped; the data stays (start it again with the same --state-dir)")
    elif args.action == "status":
        print("\n".join(status(state)))
    elif args.action == "backup":
        print("\n".join(backup(state, args.folder)))
    else:
        ports = (args.host, args.pg_port, args.port)
        info = start(state, *ports) if args.action == "start" else restore(state, args.folder, *ports)
        if args.action == "restore":
            print(f"restored {args.folder} into {info.state_dir}; the MLflow login is the backup's:")
        for name, value in info.client_env().items():  # the secrets once, as a worker exports them
            print(f"export {name}={value}")
        print(f"export {STORAGE_ENV}='{info.database_url('optuna')}'  # the sweeps' study storage (`sweep --storage`)")
        print(f"# (kept in {Path(info.state_dir) / CREDENTIALS_FILE}, readable by you only)")
        print(f"# its UI asks for that login (user {MLFLOW_ADMIN}, MLFLOW_TRACKING_PASSWORD): {views.link(info.tracking_uri)}")

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

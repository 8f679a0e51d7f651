"""The command line of `python -m digits_bench.dashboard` (`digits-bench dashboard`, `make dashboard`); what it does is
its package's docstring."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import digits_bench.dashboard as package
from digits_bench.entry import command
from digits_bench.ui import ServerError


@command
def main(argv: list[str]) -> None:
    from digits_bench.config import compose_config

    cfg = compose_config([])
    parser = argparse.ArgumentParser(prog="python -m digits_bench.dashboard", description=package.__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(cfg.paths.store_dir),
                        help="the store's folder (default: $DIGITS_BENCH_STORE, else mlruns)")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    db = Path(args.store).expanduser().resolve() / "optuna.db"
    if not db.is_file():
        raise ServerError(f"no sweeps' studies at {db}; run a sweep first (digits-bench sweep, make sweep), or point "
                          "--store (make dashboard STORE=) at the folder that holds optuna.db")
    from optuna_dashboard import run_server

    print(f"optuna-dashboard on {db}: http://127.0.0.1:{args.port} (Ctrl-C stops it)", flush=True)
    run_server(f"sqlite:///{db}", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The command line of `python -m digits_bench.ui`; what it does is its package's docstring."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import digits_bench.ui as package
from digits_bench.entry import command
from digits_bench.ui import ServerError, runs_link, start_server, wait_ready


@command
def main(argv: list[str]) -> None:
    from digits_bench.config import compose_config
    from digits_bench.signals import interrupts

    cfg = compose_config([])
    parser = argparse.ArgumentParser(prog="python -m digits_bench.ui", description=package.__doc__.splitlines()[0])
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

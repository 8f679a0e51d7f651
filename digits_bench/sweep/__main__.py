"""`python -m digits_bench.sweep [SWEEP] [--workers N] [--storage URL] [--n-trials N]`."""
from __future__ import annotations

import argparse
import logging
import sys

from ..errors import ConfigError


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m digits_bench.sweep", description="Run or resume an Optuna sweep defined in sweeps/.")
    parser.add_argument("sweep", nargs="?", default="mlp", help="a sweep in sweeps/ (name or path); default: mlp")
    parser.add_argument("--workers", type=int, default=1, help="worker processes sharing the study")
    parser.add_argument("--storage", default=None, help="Optuna RDB URL; default: SQLite in the MLflow store folder")
    parser.add_argument("--n-trials", type=int, default=None, help="override the sweep's trial budget")
    parser.add_argument("--name", default=None, help="override the study name")
    parser.add_argument("--worker-of", default=None, help=argparse.SUPPRESS)  # internal: run as a worker of this parent run
    parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from .spec import load_sweep

    try:
        if args.workers < 1:
            raise ConfigError(f"--workers must be >= 1 (got {args.workers})")
        spec = load_sweep(args.sweep, n_trials=args.n_trials, name=args.name)
    except ConfigError as err:
        print(f"digits_bench: error: {err}", file=sys.stderr)
        return 2
    from ..tracking import sigterm_as_interrupt
    from .runner import run_sweep, work

    passthrough = [args.sweep] + (["--n-trials", str(args.n_trials)] if args.n_trials else []) + (["--name", args.name] if args.name else [])
    try:
        with sigterm_as_interrupt():  # SIGTERM between trials stops as cleanly as during one
            if args.worker_of:
                work(spec, args.storage, args.worker_of, args.worker_index)
                return 0
            study = run_sweep(spec, args.storage, args.workers, passthrough)
    except KeyboardInterrupt:
        print(f"digits_bench: sweep {spec.name!r} interrupted; rerun the same command to resume it", file=sys.stderr)
        return 130
    frame = study.trials_dataframe(attrs=("number", "value", "state", "params"))
    print(frame.to_string(index=False))
    complete = [t for t in study.trials if t.value is not None and t.state.name == "COMPLETE"]
    if complete:
        print(f"best trial {study.best_trial.number}: {spec.metric}={study.best_value:.4f} {study.best_params}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`python -m digits_bench.sweep [SWEEP] [key=value ...] [--n-trials N] [--workers N] [--launcher local|slurm] [--storage URL]`."""
from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from digits_bench.entry import command
from digits_bench.errors import ConfigError, RunFailed
from digits_bench.launcher import PRESETS
from digits_bench.sweep import QUIET_LOGGERS, STORAGE_ENV, add_storage_argument

if TYPE_CHECKING:
    from digits_bench.sweep.spec import SweepSpec

def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m digits_bench.sweep", description="Run or resume an Optuna sweep defined in sweeps/.",
        epilog="example: python -m digits_bench.sweep lenet data.subset=3000 trainer.max_epochs=1 --n-trials 4")
    parser.add_argument("sweep", nargs="?", default="mlp", help="a sweep in sweeps/ (name or path); default: mlp")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="Hydra overrides applied to every trial (after the sweep's base, before the sampled values)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes sharing the study")
    parser.add_argument("--launcher", choices=PRESETS, default=None,
                        help="submit the workers through submitit (conf/hydra/launcher/<name>.yaml; hydra.launcher.KEY=VALUE "
                             "sets one of its keys): local processes, or SLURM jobs that share the study on PostgreSQL")
    add_storage_argument(parser, "the study's Optuna RDB URL")
    parser.add_argument("--n-trials", type=int, default=None, help="override the sweep's trial budget")
    parser.add_argument("--name", default=None, help="override the study name")
    # internal: run as worker N of the sweep whose parent run the launcher hands down (tracking.handoff)
    parser.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_intermixed_args(argv)
    if "=" in args.sweep:  # `python -m digits_bench.sweep data.subset=3000`: the default sweep, with an override
        args.overrides.insert(0, args.sweep)
        args.sweep = "mlp"
    args.launcher_overrides = [o for o in args.overrides if o.startswith("hydra.launcher.")]  # the jobs', not the trials'
    args.overrides = [o for o in args.overrides if o not in args.launcher_overrides]
    return args


@command(quiet=QUIET_LOGGERS)
def main(argv: list[str]) -> None:
    args = parse(argv)
    from digits_bench.sweep.spec import load_sweep
    from digits_bench.tracking.handoff import inherited

    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1 (got {args.workers})")
    if args.launcher == "slurm" and not (args.storage or "").startswith(("postgresql", "mysql")):
        raise ConfigError("--launcher slurm: workers on other nodes share the study through a database server; set "
                          f"${STORAGE_ENV}=postgresql://... and MLFLOW_TRACKING_URI to the team server (docs/team-server.md)")
    if args.launcher_overrides and args.launcher is None:
        raise ConfigError(f"{args.launcher_overrides[0]}: hydra.launcher keys set the jobs of --launcher local|slurm; add one")
    if args.n_trials is not None and args.n_trials < 1:
        raise ConfigError(f"--n-trials must be >= 1 (got {args.n_trials})")
    spec = load_sweep(args.sweep, overrides=args.overrides, n_trials=args.n_trials, name=args.name)
    parent = inherited("parent") if args.worker_index is not None else None
    if args.worker_index is not None and parent is None:
        raise ConfigError("--worker-index is for the workers a sweep starts (--workers N), not to be typed")
    if parent is None:  # the launcher checked it already for its workers
        from digits_bench.sweep.check import check_sweep

        check_sweep(spec)
    from digits_bench.signals import interrupts
    from digits_bench.sweep import ran
    from digits_bench.sweep.runner import PARENT_ATTR, run_sweep, succeeded, work

    passthrough = [args.sweep, *args.overrides] + (["--n-trials", str(args.n_trials)] if args.n_trials else []) + (
        ["--name", args.name] if args.name else [])
    try:
        with interrupts():  # SIGTERM between trials stops as cleanly as during one
            if parent is not None:
                work(spec, inherited("storage") or args.storage, parent, args.worker_index)
                return
            study = run_sweep(spec, args.storage, args.workers, passthrough, args.launcher, args.launcher_overrides)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"rerun the same command to resume sweep {spec.name!r}") from None
    from digits_bench.console import print_table
    from digits_bench.sweep.progress import best_line, trials_table

    print_table(trials_table(spec, ran(study.trials)))
    if not succeeded(study):
        errors = [t.user_attrs["error"] for t in study.trials if "error" in t.user_attrs]
        first = f"; first error: {errors[0].splitlines()[0][:300]}" if errors else ""
        raise RunFailed(f"sweep {spec.name!r}: no trial completed ({len(ran(study.trials))} ran){first}")
    print(best_line(spec, study.best_trial))
    print(where_to_look(spec, study.user_attrs[PARENT_ATTR], args.storage))


def where_to_look(spec: "SweepSpec", parent_run_id: str, storage: str | None) -> str:
    """The sweep's parent run, the link to its trials' chart, and how to open the study (a --storage URL is not
    echoed: it may hold a password)."""
    from digits_bench.config import compose_config
    from digits_bench.sweep.runner import default_storage
    from digits_bench.tracking.store import make_client
    from digits_bench.tracking.views import children_link
    from digits_bench.tracking.watch import ui_command

    cfg = compose_config([])
    ui = ui_command(cfg)
    if storage is not None:
        dashboard = f'optuna-dashboard "${STORAGE_ENV}"' if storage == os.environ.get(STORAGE_ENV) else "optuna-dashboard with your --storage URL"
    elif ui.startswith("make ui"):
        dashboard = ui.replace("make ui", "make dashboard", 1)
    else:
        dashboard = f"optuna-dashboard {default_storage(cfg)}"
    return (f"sweep {spec.name!r}: parent run {parent_run_id}; the study: {dashboard}\n"
            f"  its trials in MLflow ({ui}): {children_link(make_client(cfg), parent_run_id, charts=True)}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

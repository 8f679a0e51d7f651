"""Optuna sweeps over any config key, driven directly (see sweeps/).

Import-light: the verbs that take a study's storage (sweep, compare --study, report) share its argument here.
"""
from __future__ import annotations

import argparse
import logging
import os
from typing import Any

# Per-trial chatter (Lightning's devices, tips, "fit stopped"; Optuna's per-trial lines and failed-trial
# tracebacks; a run's own start/end lines) would bury the one progress line per trial.
QUIET_LOGGERS = {"lightning": logging.ERROR, "lightning.pytorch": logging.ERROR, "lightning.fabric": logging.ERROR,
                 "optuna": logging.ERROR, "digits_bench.training.run": logging.WARNING}
# Optuna's own CLI reads its storage URL from here too: a URL with a password stays off the command line (`ps` shows it)
STORAGE_ENV = "OPTUNA_STORAGE"


def add_storage_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """`--storage URL`, defaulting to $OPTUNA_STORAGE, else (None) SQLite in the MLflow store folder."""
    parser.add_argument("--storage", metavar="URL", default=os.environ.get(STORAGE_ENV) or None,
                        help=f"{what}; default: ${STORAGE_ENV}, else SQLite in the MLflow store folder. A URL with a "
                             f"password belongs in ${STORAGE_ENV}, not on the command line")


SURPLUS_ATTR = "surplus"  # a trial created after other workers had taken the budget's last slots: it never ran


def ran(trials: list[Any]) -> list[Any]:
    """A study's trials without the surplus ones, which ended as soon as they were created (runner.Objective.surplus)."""
    return [t for t in trials if SURPLUS_ATTR not in t.user_attrs]

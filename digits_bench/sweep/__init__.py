"""Optuna sweeps over any config key, driven directly (see sweeps/).

Import-light: the verbs that take a study's storage (sweep, compare --study, report) share its argument here.
"""
from __future__ import annotations

import argparse
import os
from typing import Any

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

"""Read handwritten digits from photos and scans with a tracked model: `python -m digits_bench.predict`.

Import-light on purpose: torch, Lightning and MLflow load only when a model is loaded.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from digits_bench.errors import ImageError, ModelLoadError

__all__ = ["ImageError", "ModelLoadError", "add_model_source", "check_model_source"]

# flag -> (metavar, help): where a model comes from, for every verb that reads one (predict, predict-eval, register)
SOURCES = {
    "--run": ("RUN_ID", "an MLflow run id: its config.yaml and its best-validation checkpoint"),
    "--experiment": ("NAME", "with --best: the experiment's FINISHED run with the highest validation accuracy"),
    "--model": ("URI", "an MLflow Model: models:/NAME/VERSION (registered), models:/NAME@ALIAS, runs:/RUN_ID/model"),
    "--checkpoint": ("PATH", "a Lightning checkpoint file (its config.yaml beside it)"),
}


def add_model_source(parser: argparse.ArgumentParser, flags: Sequence[str] = tuple(SOURCES)) -> None:
    """The options that name a model, one of them required, with --best and --tracking-uri (check_model_source
    checks what argparse cannot)."""
    source = parser.add_mutually_exclusive_group(required=True)
    for flag in flags:
        metavar, text = SOURCES[flag]
        source.add_argument(flag, metavar=metavar, help=text, type=Path if flag == "--checkpoint" else None)
    parser.add_argument("--best", action="store_true", help="with --experiment: take its best run (chosen on validation)")
    parser.add_argument("--tracking-uri", metavar="URI", help="the MLflow store or server (default: as training: "
                                                              "$MLFLOW_TRACKING_URI, else $DIGITS_BENCH_STORE/mlflow.db)")


def check_model_source(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--experiment and --best go together (an experiment names many runs; --best picks one)."""
    if args.experiment is not None and not args.best:
        parser.error("--experiment NAME needs --best (the run with the highest validation accuracy)")
    if args.best and args.experiment is None:
        parser.error("--best needs --experiment NAME")

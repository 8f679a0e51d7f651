"""`python -m digits_bench.predict --run RUN_ID IMAGE [IMAGE ...]`: read handwritten digits with a tracked model.

Exit status: 0 all images read; 1 some image could not be read (each says why on stderr, the
others are still read); 2 no model (bad run, experiment, checkpoint or config) or bad arguments.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from digits_bench.entry import command, error_line
from digits_bench.console import print_table
from digits_bench.errors import ConfigError, ImageError
from digits_bench.predict import add_model_source, check_model_source

if TYPE_CHECKING:
    from digits_bench.predict.loading import LoadedModel
    from digits_bench.predict.reader import Reading


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m digits_bench.predict",
        description="Read handwritten digits (one, or several in a row) from photos or scans with a trained model.")
    add_model_source(parser)
    parser.add_argument("--config", metavar="PATH", type=Path, help="the run's config.yaml, for a --checkpoint without one beside it")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--tta", action="store_true", help="average each digit over its one-pixel shifts (test-time augmentation)")
    parser.add_argument("--save", metavar="DIR", type=Path, help="write annotated images and the 28x28 crops the model saw")
    parser.add_argument("images", nargs="+", metavar="IMAGE", type=Path, help="image files: any size, any format Pillow reads")
    args = parser.parse_args(argv)
    check_model_source(parser, args)
    if args.config is not None and args.checkpoint is None:
        parser.error("--config goes with --checkpoint (a run brings its own config)")
    return args


def load_model(args: argparse.Namespace) -> LoadedModel:
    from digits_bench.predict import (
        loading,  # torch, Lightning and MLflow: imported once the arguments are known to be good
    )

    if args.checkpoint is not None:
        return loading.from_checkpoint(args.checkpoint, args.config, args.tracking_uri)
    if args.model is not None:
        return loading.from_model_uri(args.model, args.tracking_uri)
    client = loading.store_client(args.tracking_uri)
    run_id = args.run if args.run is not None else loading.best_run(client, args.experiment)
    return loading.from_run(client, run_id)


def show_readings(readings: list[Reading], model: LoadedModel) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"digits read by {model.cfg.model.name} ({model.source})"), title_justify="left")
    table.add_column("image", overflow="fold")
    table.add_column("read", style="bold")
    table.add_column("digit:probability, left to right")
    for r in readings:
        table.add_row(escape(r.file), r.text,  # a file named `scan[1].png` is not markup
                      "  ".join(f"{d.digit}:{d.prob:.1%}" for d in r.digits))
    print_table(table)


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, n = path.stem, 1
    while stem in used:
        n += 1
        stem = f"{path.stem}_{n}"
    used.add(stem)
    return stem


# An existing SQLite store needs no migration notes on stderr; errors are ours to report.
@command(quiet={"mlflow": logging.ERROR, "alembic": logging.ERROR})
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.save is not None:
            args.save.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create --save folder {args.save} ({err.strerror})") from None
    from digits_bench.predict.preprocess import check_file

    unreadable: dict[Path, ImageError] = {}
    for path in args.images:  # before a model is loaded (seconds): is there any file to read? (stat only: each is read once)
        try:
            check_file(path)
        except ImageError as err:
            unreadable[path] = err
    if len(unreadable) == len(args.images):
        for path, err in unreadable.items():
            error_line(f"{path}: {err}")
        return 1
    model = load_model(args)
    from digits_bench.predict.reader import read_image
    from digits_bench.predict.render import save_reading

    readings: list[Reading] = []
    results: list[dict] = []
    stems: set[str] = set()
    failed = 0
    for path in args.images:
        try:
            reading = read_image(model.module, path, args.tta)
        except ImageError as err:
            error_line(f"{path}: {err}")
            results.append({"file": str(path), "error": str(err)})
            failed += 1
            continue
        readings.append(reading)
        results.append(reading.as_dict())
        if args.save is not None:
            try:
                results[-1]["saved"] = [str(p) for p in save_reading(reading, args.save, _unique_stem(path, stems))]
            except OSError as err:  # read, but not saved (a full disk): still a failure to report
                error_line(f"{path}: cannot save to {args.save} ({err.strerror or err})")
                failed += 1
    if args.json:
        source = {"model": model.cfg.model.name, "source": model.source, "run_id": model.run_id, "checkpoint": model.checkpoint}
        images = ",\n  ".join(json.dumps(r) for r in results)  # one image a line: readable, and still one JSON document
        print(f'{{"model": {json.dumps(source)},\n "images": [\n  {images}\n]}}')
    elif readings:
        show_readings(readings, model)
        saved = sum(len(r.get("saved", [])) for r in results)
        if saved:
            print(f"saved {saved} images to {args.save}: <name>_annotated.png (the boxes read) and <name>_digit<i>_<read>.png (the 28x28 inputs)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

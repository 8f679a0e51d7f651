"""`python -m digits_bench.predict.evaluate --run RUN_ID` (`make predict-eval RUN=<id>`): how well a run reads
handwriting that is not MNIST's, per condition, through the same code as `predict`.

The set (digits_bench/predict/evalset.py) is built once per seed and size into <data dir>/evalset-v<version>-<seed>-<per condition>/ and reused.
By source (fonts, digits drawn in strokes, MNIST's test digits re-rendered), with the headline over the sources
that are not MNIST's; by condition; by style (the shapes people write, and their writing habits): single digits
read right, rows read right whole, rows segmented into the right number of digits; and, apart, scikit-learn's
8x8 digits (held out of training, tuning and this choice of steps).
Writes results/predict-eval-<label>.{md,csv}; with --ablate, each preprocessing step flipped in turn
(predict-eval-<label>-steps.{md,csv}). Exit status: 0 measured; 2 no model, no fonts or bad
arguments.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Callable, Sequence

import pandas as pd
from omegaconf import OmegaConf

from digits_bench.console import print_table
from digits_bench.entry import command
from digits_bench.errors import ConfigError, ImageError
from digits_bench.predict import add_model_source, check_model_source
from digits_bench.predict.evalset import MNIST_SOURCE, SKLEARN_8X8, STROKES_SOURCE
from digits_bench.data import strokes
from digits_bench.predict.preprocess import DEFAULT_SWITCHES, Switches

if TYPE_CHECKING:
    from rich.table import Table


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m digits_bench.predict.evaluate", description=__doc__.split("\n\n")[0])
    add_model_source(parser)
    parser.add_argument("--seed", type=int, default=0, help="the evaluation set's seed (default 0): the same seed, the same set")
    parser.add_argument("--per-condition", type=int, default=40, help="single digits per condition (rows: a quarter as many)")
    parser.add_argument("--writers", choices=sorted(strokes.WRITERS), default="evaluation",
                        help="whose strokes: the evaluation's (the report), or the validation's (to choose data.strokes "
                             "and preprocessing on, never the report's)")
    parser.add_argument("--out", default="results", help="where predict-eval-<label>.{md,csv} go")
    parser.add_argument("--tta", action="store_true", help="average each crop over its one-pixel shifts (as predict --tta)")
    parser.add_argument("--held-out", type=int, default=1797, metavar="N",
                        help="how many of scikit-learn's 1797 8x8 digits to read (default all)")
    parser.add_argument("--ablate", action="store_true",
                        help="read the sets once per preprocessing step flipped (on if off, off if on): what each step is worth")
    args = parser.parse_args(argv)
    check_model_source(parser, args)
    args.config = None
    return args


def _built(folder: Path, build: Callable[[Path], object]) -> Path:
    """`folder` holding a finished set: built once into a hidden sibling and renamed, so it is complete or absent
    (another process may finish it first)."""
    if not (folder / "labels.csv").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            build(building)
            building.rename(folder)
        except FileNotFoundError as err:
            raise ConfigError(str(err)) from None
        except OSError:
            if not (folder / "labels.csv").is_file():
                raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return folder


def evaluation_set(seed: int, per_condition: int, writers: str = "evaluation") -> tuple[Path, list]:
    """The set for `seed`, built on first use next to the datasets (MNIST's test digits among its sources)."""
    from digits_bench.config import compose_config
    from digits_bench.data import DatasetSpec, load_split
    from digits_bench.predict import evalset

    cfg = compose_config([])

    def build(out: Path) -> None:
        images, labels = load_split(DatasetSpec.from_config(dict(cfg.data.dataset)), "test")
        evalset.build(out, seed, per_condition, (images.numpy(), labels.numpy()), writers=writers)

    suffix = "" if writers == "evaluation" else f"-{writers}"
    folder = _built(Path(cfg.paths.data_dir) / f"evalset-v{evalset.VERSION}-{seed}-{per_condition}{suffix}", build)
    return folder, evalset.load(folder)


def independent_set() -> tuple[Path, list]:
    """scikit-learn's 8x8 digits as scans: the held-out check, built once (seed 0 picks each one's scale)."""
    from digits_bench.config import compose_config
    from digits_bench.predict import evalset

    folder = _built(Path(compose_config([]).paths.data_dir) / "evalset-sklearn-8x8", evalset.build_8x8)
    return folder, evalset.load(folder)


def score(module, folder: Path, items: list, tta: bool = False, steps: Switches = DEFAULT_SWITCHES) -> pd.DataFrame:
    """One row per image: what was read, and whether it was right (whole) and segmented right (digit count)."""
    from digits_bench.predict.reader import read_image

    rows = []
    for item in items:
        try:
            text = read_image(module, folder / item.file, tta, steps).text
        except ImageError:
            text = ""
        rows.append({**item.__dict__, "read": text, "right": text == item.text, "segmented": len(text) == len(item.text)})
    return pd.DataFrame(rows)


NOT_MNIST = "overall (not MNIST)"  # the headline: writers and pens MNIST never had
MNIST_AGAIN = "MNIST re-rendered"


def source_of(source: str) -> str:
    """An item's source as the report groups it: fonts (any of them), strokes, or MNIST's test digits as photos."""
    return MNIST_AGAIN if source == MNIST_SOURCE else "strokes" if source == STROKES_SOURCE else "fonts"


def measures(scored: pd.DataFrame) -> dict[str, float]:
    """Single digits read right, rows read right whole, rows cut into the right number of digits, and how many
    single digits that is."""
    singles, rows = scored[scored["kind"] == "single"], scored[scored["kind"] == "row"]
    return {"single_acc": singles["right"].mean(), "row_acc": rows["right"].mean(), "row_segmented": rows["segmented"].mean(),
            "n_single": float(len(singles))}


def by_source(scored: pd.DataFrame, independent: pd.DataFrame) -> pd.DataFrame:
    """Each source on its own, then the headline over the sources that are not MNIST's, then the held-out 8x8
    digits (never part of the headline)."""
    sources = scored["source"].map(source_of)
    table = {name: measures(scored[sources == name]) for name in ("fonts", "strokes", MNIST_AGAIN)}
    table[NOT_MNIST] = measures(scored[sources != MNIST_AGAIN])
    table[SKLEARN_8X8] = measures(independent)
    return pd.DataFrame.from_dict(table, orient="index").rename_axis("source")


def by_condition(scored: pd.DataFrame) -> pd.DataFrame:
    """Each condition (pen, blur, lighting, ...) over the sources that are not MNIST's."""
    own = scored[scored["source"].map(source_of) != MNIST_AGAIN]
    return pd.DataFrame.from_dict({c: measures(g) for c, g in own.groupby("condition", sort=False)}, orient="index").rename_axis("condition")


def by_style(scored: pd.DataFrame) -> pd.DataFrame:
    """The stroke-drawn digits by the shape they were written in (single digits) and by the writer's habit (rows)."""
    drawn = scored[scored["source"] == STROKES_SOURCE]
    return pd.DataFrame.from_dict({style: measures(g) for style, g in sorted(drawn.groupby("style"))}, orient="index").rename_axis("style")


def ablation(module, sets: dict[str, tuple[Path, list]], tta: bool) -> pd.DataFrame:
    """Every preprocessing step switched in turn (off if it is on by default, on if off), each source read on its
    own: a step is on by default only where it helps across sources."""
    variants = {"default steps": DEFAULT_SWITCHES} | {
        f"{'without' if on else 'with'} {step}": replace(DEFAULT_SWITCHES, **{step: not on})
        for step, on in asdict(DEFAULT_SWITCHES).items()}
    table = {}
    for name, steps in variants.items():
        scored = {key: score(module, folder, items, tta, steps) for key, (folder, items) in sets.items()}
        sources = by_source(scored["set"], scored["held out"])
        table[name] = {SHORT.get(source, source): sources.loc[source, "single_acc"] for source in sources.index} | {
            "rows cut right": sources.loc[NOT_MNIST, "row_segmented"]}
    return pd.DataFrame.from_dict(table, orient="index").rename_axis("preprocessing")


SHORT = {MNIST_AGAIN: "MNIST again", NOT_MNIST: "not MNIST", SKLEARN_8X8: "8x8 held out"}  # the ablation's columns: single digits
COLUMN_NAMES = {"single_acc": "single digits %", "row_acc": "rows read %", "row_segmented": "rows cut right %",
                "n_single": "singles"}


def console_table(table: pd.DataFrame) -> Table:
    """A table of the report as a person reads it: percentages to one decimal, counts whole, `—` where a measure
    does not apply (the 8x8 digits are single digits: no rows)."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    view = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    view.add_column(escape(str(table.index.name or "condition")))
    for column in table.columns:
        view.add_column(COLUMN_NAMES.get(column, column), justify="right")
    for name, row in table.iterrows():
        view.add_row(escape(str(name)), *("—" if pd.isna(v) else f"{v:.0f}" if column == "n_single" else f"{100 * v:.1f}"
                                          for column, v in row.items()))
    return view


def header(model, folder: Path, items: list, args: argparse.Namespace) -> str:
    from digits_bench.tracking import git_commit

    cfg = model.cfg
    return (f"# Reading handwriting that is not MNIST's: {cfg.model.name} ({model.source})\n\n"
            f"- the run: model={cfg.model.name}, recipe={OmegaConf.select(cfg, 'recipe.name')}, "
            f"{OmegaConf.select(cfg, 'trainer.max_epochs')} epochs, seed {OmegaConf.select(cfg, 'seed')}, "
            f"stroke-drawn digits in training: data.strokes={OmegaConf.select(cfg, 'data.strokes', default=0.0)}\n"
            f"- read on the CPU at commit {git_commit()}\n"
            f"- set: {folder.name} ({len(items)} images, seed {args.seed}): handwriting fonts; digits drawn in strokes, each "
            f"style by the {args.writers} writers {strokes.WRITERS[args.writers].start}-{strokes.WRITERS[args.writers].stop - 1} (training draws "
            f"writers {strokes.TRAINING_WRITERS.start}-{strokes.TRAINING_WRITERS.stop - 1}); MNIST test digits as photos, "
            f"reported apart and left out of the headline; held out: {args.held_out} of scikit-learn's 1797 8x8 digits as scans\n"
            f"- read through `predict`'s path: segmentation, MNIST-like crops, one forward pass"
            f"{' per one-pixel shift, probabilities averaged (--tta)' if args.tta else ''}\n\n")


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from digits_bench.predict.__main__ import load_model

    model = load_model(args)
    held_out_folder, held_out = independent_set()
    sets = {"set": evaluation_set(args.seed, args.per_condition, args.writers), "held out": (held_out_folder, held_out[: args.held_out])}
    (folder, items) = sets["set"]
    label = (model.run_id or Path(model.source).stem) + ("-tta" if args.tta else "") + ("-steps" if args.ablate else "") + (
        "" if args.writers == "evaluation" else f"-{args.writers}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.ablate:
        table = ablation(model.module, sets, args.tta)
        table.to_csv(out / f"predict-eval-{label}.csv")
        (out / f"predict-eval-{label}.md").write_text(header(model, folder, items, args) + table.round(4).to_markdown() + "\n")
        print_table(console_table(table))
    else:
        scored = {key: score(model.module, f, i, args.tta) for key, (f, i) in sets.items()}
        pd.concat(scored.values()).to_csv(out / f"predict-eval-{label}.csv", index=False)
        tables = {"By source": by_source(scored["set"], scored["held out"]), "By condition (not MNIST)": by_condition(scored["set"]),
                  "By style (strokes: single digits by shape, rows by writing habit)": by_style(scored["set"])}
        (out / f"predict-eval-{label}.md").write_text(header(model, folder, items, args) + "\n".join(
            f"## {title}\n\n{table.round(4).to_markdown()}\n" for title, table in tables.items()))
        print_table(console_table(tables["By source"]))
        styles = tables[next(t for t in tables if t.startswith("By style"))]
        singles = styles.dropna(subset=["single_acc"]).sort_values("single_acc")
        if not singles.empty:
            weakest = ", ".join(f"{style} {100 * row.single_acc:.1f}% (n={row.n_single:.0f})" for style, row in singles.head(3).iterrows())
            print(f"weakest styles (strokes, single digits): {weakest}")
    print(f"wrote {out / f'predict-eval-{label}.md'} (by source, condition and style) and .csv")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))

"""`python -m digits_bench.predict.evaluate --run RUN_ID` (`make predict-eval RUN=<id>`): how well a run reads
handwriting that is not MNIST's, per condition, through the same code as `predict`.

The set (digits_bench/predict/evalset.py) is built once per seed and size into <data dir>/evalset-v<version>-<seed>-<per condition>/ and reused.
Per condition: single digits read right; rows read right whole; rows segmented into the right number of
digits; and, apart, scikit-learn's 8x8 digits (held out of training, tuning and this choice of steps).
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
from digits_bench.predict.evalset import SKLEARN_8X8
from digits_bench.predict.preprocess import DEFAULT_SWITCHES, Switches

if TYPE_CHECKING:
    from rich.table import Table


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m digits_bench.predict.evaluate", description=__doc__.split("\n\n")[0])
    add_model_source(parser)
    parser.add_argument("--seed", type=int, default=0, help="the evaluation set's seed (default 0): the same seed, the same set")
    parser.add_argument("--per-condition", type=int, default=40, help="single digits per condition (rows: a quarter as many)")
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


def evaluation_set(seed: int, per_condition: int) -> tuple[Path, list]:
    """The set for `seed`, built on first use next to the datasets (MNIST's test digits among its sources)."""
    from digits_bench.config import compose_config
    from digits_bench.data import DatasetSpec, load_split
    from digits_bench.predict import evalset

    cfg = compose_config([])

    def build(out: Path) -> None:
        images, labels = load_split(DatasetSpec.from_config(dict(cfg.data.dataset)), "test")
        evalset.build(out, seed, per_condition, (images.numpy(), labels.numpy()))

    folder = _built(Path(cfg.paths.data_dir) / f"evalset-v{evalset.VERSION}-{seed}-{per_condition}", build)
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


def per_condition(scored: pd.DataFrame, independent: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per condition: single digits, whole rows, rows cut into the right number of digits; then the
    set overall, then the held-out 8x8 digits on their own row (never part of "overall")."""
    singles = scored[scored["kind"] == "single"].groupby("condition", sort=False)["right"].mean().rename("single_acc")
    rows = scored[scored["kind"] == "row"].groupby("condition", sort=False)
    table = pd.concat([singles, rows["right"].mean().rename("row_acc"), rows["segmented"].mean().rename("row_segmented")], axis=1)
    overall = pd.DataFrame(summary(scored), index=["overall"])
    held_out = pd.DataFrame({"single_acc": [independent["right"].mean()]}, index=[SKLEARN_8X8])
    return pd.concat([table, overall, held_out]).rename_axis("condition")


def summary(scored: pd.DataFrame) -> dict[str, list[float]]:
    singles, rows = scored[scored["kind"] == "single"], scored[scored["kind"] == "row"]
    return {"single_acc": [singles["right"].mean()], "row_acc": [rows["right"].mean()], "row_segmented": [rows["segmented"].mean()]}


def ablation(module, sets: dict[str, tuple[Path, list]], tta: bool) -> pd.DataFrame:
    """Every preprocessing step switched in turn (off if it is on by default, on if off), on the set and the
    held-out digits: a step is on by default when the set reads worse without it."""
    variants = {"default steps": DEFAULT_SWITCHES} | {
        f"{'without' if on else 'with'} {step}": replace(DEFAULT_SWITCHES, **{step: not on})
        for step, on in asdict(DEFAULT_SWITCHES).items()}
    table = {}
    for name, steps in variants.items():
        scored = {key: score(module, folder, items, tta, steps) for key, (folder, items) in sets.items()}
        table[name] = {k: v[0] for k, v in summary(scored["set"]).items()} | {"sklearn_8x8_acc": scored["held out"]["right"].mean()}
    return pd.DataFrame.from_dict(table, orient="index").rename_axis("preprocessing")


COLUMN_NAMES = {"single_acc": "single digits %", "row_acc": "rows read %", "row_segmented": "rows cut right %",
                "sklearn_8x8_acc": "8x8 held out %"}


def console_table(table: pd.DataFrame) -> Table:
    """The per-condition (or per-step) table as a person reads it: percentages to one decimal, `—` where a
    measure does not apply (the 8x8 digits are single digits: no rows)."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    view = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    view.add_column(escape(str(table.index.name or "condition")))
    for column in table.columns:
        view.add_column(COLUMN_NAMES.get(column, column), justify="right")
    for name, row in table.iterrows():
        view.add_row(escape(str(name)), *("—" if pd.isna(v) else f"{100 * v:.1f}" for v in row))
    return view


def header(model, folder: Path, items: list, args: argparse.Namespace) -> str:
    from digits_bench.tracking import git_commit

    cfg = model.cfg
    return (f"# Reading handwriting that is not MNIST's: {cfg.model.name} ({model.source})\n\n"
            f"- the run: model={cfg.model.name}, recipe={OmegaConf.select(cfg, 'recipe.name')}, "
            f"{OmegaConf.select(cfg, 'trainer.max_epochs')} epochs, seed {OmegaConf.select(cfg, 'seed')}\n"
            f"- read on the CPU at commit {git_commit()}\n"
            f"- set: {folder.name} ({len(items)} images, seed {args.seed}; fonts and MNIST test digits as photos); "
            f"held out: {args.held_out} of scikit-learn's 1797 8x8 digits as scans\n"
            f"- read through `predict`'s path: segmentation, MNIST-like crops, one forward pass"
            f"{' per one-pixel shift, probabilities averaged (--tta)' if args.tta else ''}\n\n")


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from digits_bench.predict.__main__ import load_model

    model = load_model(args)
    held_out_folder, held_out = independent_set()
    sets = {"set": evaluation_set(args.seed, args.per_condition), "held out": (held_out_folder, held_out[: args.held_out])}
    (folder, items) = sets["set"]
    label = (model.run_id or Path(model.source).stem) + ("-tta" if args.tta else "") + ("-steps" if args.ablate else "")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.ablate:
        table = ablation(model.module, sets, args.tta)
        table.to_csv(out / f"predict-eval-{label}.csv")
    else:
        scored = {key: score(model.module, f, i, args.tta) for key, (f, i) in sets.items()}
        table = per_condition(scored["set"], scored["held out"])
        pd.concat(scored.values()).to_csv(out / f"predict-eval-{label}.csv", index=False)
    (out / f"predict-eval-{label}.md").write_text(header(model, folder, items, args) + table.round(4).to_markdown() + "\n")
    print_table(console_table(table))
    print(f"wrote {out / f'predict-eval-{label}.md'} and .csv")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))

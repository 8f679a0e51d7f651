"""`python -m digits_bench.predict.evaluate --run RUN_ID` (`make predict-eval RUN=<id>`): how well a run reads
handwriting that is not MNIST's, per condition, through the same code as `predict`.

The set (digits_bench/predict/evalset.py) is built once per seed into <data dir>/evalset-<seed>/ and reused.
Per condition: single digits read right; rows read right whole; rows segmented into the right number of
digits. Writes results/predict-eval-<label>.{md,csv}. Exit status: 0 measured; 2 no model, no fonts or bad
arguments.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import pandas as pd
from omegaconf import OmegaConf

from digits_bench.cli.entry import command
from digits_bench.errors import ConfigError, ImageError


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m digits_bench.predict.evaluate", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="RUN_ID", help="an MLflow run id")
    source.add_argument("--experiment", metavar="NAME", help="with --best: the experiment's best FINISHED run by validation accuracy")
    source.add_argument("--model", metavar="URI", help="an MLflow Model: models:/NAME/VERSION")
    source.add_argument("--checkpoint", metavar="PATH", type=Path, help="a Lightning checkpoint file (its config beside it)")
    parser.add_argument("--best", action="store_true")
    parser.add_argument("--tracking-uri", metavar="URI")
    parser.add_argument("--seed", type=int, default=0, help="the evaluation set's seed (default 0): the same seed, the same set")
    parser.add_argument("--per-condition", type=int, default=40, help="single digits per condition (rows: a quarter as many)")
    parser.add_argument("--out", default="results", help="where predict-eval-<label>.{md,csv} go")
    parser.add_argument("--tta", action="store_true", help="average each crop over its one-pixel shifts (as predict --tta)")
    args = parser.parse_args(argv)
    if (args.experiment is None) != (not args.best):
        parser.error("--experiment NAME and --best go together")
    args.config = None
    return args


def evaluation_set(seed: int, per_condition: int) -> tuple[Path, list]:
    """The set for `seed`, built on first use next to the datasets (MNIST's test digits among its sources)."""
    from digits_bench.config import compose_config
    from digits_bench.data import DatasetSpec, load_split
    from digits_bench.predict import evalset

    cfg = compose_config([])
    folder = Path(cfg.paths.data_dir) / f"evalset-{seed}-{per_condition}"
    if not (folder / "labels.csv").is_file():
        images, labels = load_split(DatasetSpec.from_config(dict(cfg.data.dataset)), "test")
        folder.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            evalset.build(building, seed, per_condition, (images.numpy(), labels.numpy()))
            building.rename(folder)  # complete or absent; another process may have finished it first
        except FileNotFoundError as err:
            raise ConfigError(str(err)) from None
        except OSError:
            if not (folder / "labels.csv").is_file():
                raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return folder, evalset.load(folder)


def score(module, folder: Path, items: list, tta: bool = False) -> pd.DataFrame:
    """One row per image: what was read, and whether it was right (whole) and segmented right (digit count)."""
    from digits_bench.predict.reader import read_image

    rows = []
    for item in items:
        try:
            text = read_image(module, folder / item.file, tta).text
        except ImageError:
            text = ""
        rows.append({**item.__dict__, "read": text, "right": text == item.text, "segmented": len(text) == len(item.text)})
    return pd.DataFrame(rows)


def per_condition(scored: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per condition: single digits, whole rows, rows cut into the right number of digits."""
    singles = scored[scored["kind"] == "single"].groupby("condition", sort=False)["right"].mean().rename("single_acc")
    rows = scored[scored["kind"] == "row"].groupby("condition", sort=False)
    table = pd.concat([singles, rows["right"].mean().rename("row_acc"), rows["segmented"].mean().rename("row_segmented")], axis=1)
    overall = pd.DataFrame({"single_acc": [scored.loc[scored["kind"] == "single", "right"].mean()],
                            "row_acc": [scored.loc[scored["kind"] == "row", "right"].mean()],
                            "row_segmented": [scored.loc[scored["kind"] == "row", "segmented"].mean()]}, index=["overall"])
    return pd.concat([table, overall]).rename_axis("condition")


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from digits_bench.predict.__main__ import load_model

    model = load_model(args)
    folder, items = evaluation_set(args.seed, args.per_condition)
    scored = score(model.module, folder, items, args.tta)
    table = per_condition(scored)
    label = (model.run_id or Path(model.source).stem) + ("-tta" if args.tta else "")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scored.to_csv(out / f"predict-eval-{label}.csv", index=False)
    from digits_bench.tracking import git_commit

    cfg = model.cfg
    (out / f"predict-eval-{label}.md").write_text(
        f"# Reading handwriting that is not MNIST's: {cfg.model.name} ({model.source})\n\n"
        f"- the run: model={cfg.model.name}, recipe={OmegaConf.select(cfg, 'recipe.name')}, "
        f"{OmegaConf.select(cfg, 'trainer.max_epochs')} epochs, seed {OmegaConf.select(cfg, 'seed')}\n"
        f"- read on the CPU at commit {git_commit()}\n"
        f"- set: {folder.name} ({len(items)} images, seed {args.seed}; fonts and MNIST test digits as photos)\n"
        f"- read through `predict`'s path: segmentation, MNIST-like crops, one forward pass"
        f"{' per one-pixel shift, probabilities averaged (--tta)' if args.tta else ''}\n\n"
        + table.round(4).to_markdown() + "\n")
    print(table.round(4).to_string())
    print(f"wrote {out / f'predict-eval-{label}.md'} and .csv")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))

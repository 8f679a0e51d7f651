"""`python -m digits_bench.report`: results/leaderboard.{csv,md} and plots, from the runs in MLflow."""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import platform
import sys
from pathlib import Path

import optuna
import pandas as pd
import torch

from digits_bench import tracking
from digits_bench.entry import command
from digits_bench.config import compose_config
from digits_bench.console import print_table
from digits_bench.errors import ConfigError
from digits_bench.report.plots import (
    accuracy_vs_params,
    accuracy_vs_time,
    study_plots,
    validation_curves,
)
from digits_bench.report.runs import RUN_COLUMNS, load_runs, with_archive
from digits_bench.report.table import leaderboard, markdown, recipe_notes, summary
from digits_bench.sweep import add_storage_argument, ran

SUMMARY_WIDTH = 100  # the console's table reads on a laptop's half screen; leaderboard.md has every column


def _study_line(name: str, frame: pd.DataFrame, plots: list[Path]) -> str:
    states = frame["state"].value_counts().to_dict()
    complete = frame[frame["state"] == "COMPLETE"]
    best = ""
    if not complete.empty:
        minimize = "direction" in frame.columns and frame["direction"].iloc[0] == "MINIMIZE"
        top = complete.loc[complete["value"].idxmin() if minimize else complete["value"].idxmax()]
        params = {c.removeprefix("params_"): top[c].item() if hasattr(top[c], "item") else top[c]
                  for c in frame.columns if c.startswith("params_") and pd.notna(top[c])}
        best = f"best trial {int(top['number'])}: {100 * top['value']:.2f}% val acc, {params}"
    return f"- **{name}**: {len(frame)} trials {states}. {best} " + " ".join(f"![]({p.name})" for p in plots)


def study_section(storage: str, out: Path, archive: pd.DataFrame | None) -> tuple[str, list[pd.DataFrame]]:
    """Every study in the storage, plus those an earlier report recorded (studies.csv) that it does not hold."""
    lines, frames = [], []
    names: list[str] = []
    local = storage.startswith("sqlite:///") and not Path(storage.removeprefix("sqlite:///")).is_file()
    try:  # a local study database that is not there is not made by looking
        names = [] if local else [s.study_name for s in optuna.get_all_study_summaries(storage)]
    except Exception:  # no study database yet
        names = []
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        frame = study.trials_dataframe(attrs=("number", "value", "state", "params", "duration"))
        frame = frame[frame["number"].isin({t.number for t in ran(study.trials)})]  # not the surplus ones: never ran
        # a study with a named objective (every sweep's: `val/acc`) calls the column `value_val/acc`
        frame = frame.rename(columns={f"value_{metric}": "value" for metric in study.metric_names or []})
        frame.insert(0, "study", name)
        frame["state"] = frame["state"].astype(str)
        frame["direction"] = study.direction.name
        frames.append(frame)
        lines.append(_study_line(name, frame, study_plots(study, out)))
    if archive is not None:
        for name, frame in archive[~archive["study"].isin(names)].groupby("study", sort=True):
            frames.append(frame)
            plots = sorted(out.glob(f"study_{name}_*.png"))
            lines.append(_study_line(str(name), frame, plots))
    return "\n".join(lines), frames


def _row_labels(board: pd.DataFrame) -> dict[str, str]:
    """run id -> the label of the leaderboard row it counts in."""
    return {run: recipe for recipe, runs in zip(board["recipe"], board["run_ids"]) for run in runs.split()}


@command(quiet={"optuna": logging.WARNING})
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m digits_bench.report", description=__doc__)
    parser.add_argument("--out", default="results", help="output folder (default results/)")
    add_storage_argument(parser, "the Optuna storage with the studies to plot")
    parser.add_argument("--no-archive", action="store_true",
                        help="ignore the runs.csv/studies.csv already in --out (default: keep the runs this store does not hold)")
    parser.add_argument("--all", action="store_true",
                        help="also show rows of runs on a data subset or cut short (fewer epochs than their preset)")
    args = parser.parse_args(argv)
    cfg = compose_config([])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from digits_bench.tracking.store import store_exists

    # reading creates nothing: without a local store, only the runs an earlier report carried
    runs, curves = load_runs(tracking.make_client(cfg), cfg.tracking.experiment) if store_exists(cfg) else (pd.DataFrame(columns=RUN_COLUMNS), {})
    local = len(runs)
    carried = 0
    if not args.no_archive:
        try:
            runs, curves, carried = with_archive(runs, curves, out / "runs.csv")
        except ValueError as err:  # an unreadable or foreign runs.csv
            raise ConfigError(str(err)) from None
    if runs.empty:
        raise ConfigError(f"no finished, test-scored runs in {tracking.tracking_uri(cfg)}; run `make train` or compare first")
    board = leaderboard(runs, include_partial=args.all)
    if board.empty:
        raise ConfigError("every run is on a data subset or cut short; `--all` shows them")
    board.to_csv(out / "leaderboard.csv", index=False)
    runs.sort_values(["recipe", "seed"]).to_csv(out / "runs.csv", index=False)
    accuracy_vs_params(board, out / "accuracy_vs_params.png")
    accuracy_vs_time(board, out / "accuracy_vs_time.png")
    shown = runs[runs["run_id"].isin(" ".join(board["run_ids"]).split())]
    validation_curves(shown.assign(row=shown["run_id"].map(_row_labels(board))), curves, out / "validation_curves.png")
    from digits_bench.sweep.runner import default_storage

    old_studies = None if args.no_archive or not (out / "studies.csv").is_file() else pd.read_csv(out / "studies.csv")
    studies, frames = study_section(args.storage or default_storage(cfg), out, old_studies)
    if frames:
        pd.concat(frames).to_csv(out / "studies.csv", index=False)
    header = (
        f"# digits_bench leaderboard\n\nGenerated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC} from "
        f"{len(runs)} MLflow runs (`make report`; {local} from this store, {carried} carried over from the "
        f"previous runs.csv). Environment: {', '.join(sorted(runs['device'].unique()))}; "
        f"torch {torch.__version__}, Python {platform.python_version()}; commits {', '.join(sorted(runs['git_commit'].unique()))}.\n"
        "Test accuracy is the best-validation checkpoint of each run scored once on the 10k test set. "
        "A row is one configuration (the resolved config without seed and bookkeeping) on one kind of device; "
        "a name in [brackets] says how the row differs from its preset. `n` is the number of seeds (a seed run "
        "twice counts once, its latest run, and is flagged ⚠); times are training only (evaluation excluded). "
        + ("Rows of runs on a data subset or cut short are included (`--all`).\n\n" if args.all else
           f"{int(runs['partial'].fillna(False).astype(bool).sum())} runs on a data subset or cut short are left out (`--all` shows them).\n\n")
    )
    notes = recipe_notes(board)
    body = markdown(board) + (f"\n\nΔ vs claim: ✓ when no further below the tutorial's claim than twice the seed spread (or 0.2 pp); a ≥ target (the harness's own goals) is ✓ only when the seed mean reaches it.\n\n{notes}" if notes else "")
    body += "\n\n![accuracy vs parameters](accuracy_vs_params.png)\n![accuracy vs time](accuracy_vs_time.png)\n![validation curves](validation_curves.png)\n"
    if studies:
        body += f"\n## Sweeps\n\n{studies}\n"
    (out / "leaderboard.md").write_text(header + body)
    print_table(summary(board), width=SUMMARY_WIDTH)
    print(f"every column (optimizer, schedule, claims, times to 99%, runs): {out}/leaderboard.md, .csv, plots")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

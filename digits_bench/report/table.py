"""Aggregate runs into the leaderboard: one row per configuration (fingerprint) and kind of device, seeds pooled."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from digits_bench.report.identity import device_kind

if TYPE_CHECKING:
    from rich.table import Table

COLUMNS = ["recipe", "device_kind", "model", "optimizer", "aug", "schedule", "epochs", "n_seeds", "test_acc_mean", "test_acc_std",
           "claimed_test_acc", "claim_kind", "vs_claim", "meets_claim", "seeds_at_claim", "best_val_acc", "params", "train_time_s", "images_per_s",
           "time_to_val_99_s", "reached_99", "time_to_val_995_s", "reached_995", "device", "git_commit", "run_ids", "repeated_seeds", "partial", "fingerprint", "tutorial"]
# One test run's accuracy moves by about ±0.15 pp between seeds at 98% on 10k images; a recipe
# meets its tutorial's claim when it is no further below it than twice its seed spread or this floor.
# A target (the harness's own goals: speedrun, best) is met only when the seed mean reaches it.
NOISE_FLOOR = 0.002
RECIPE_WIDTH = 30  # the console summary's recipe column; leaderboard.md keeps the whole label


def _joined(values: pd.Series) -> str:
    return ", ".join(sorted({str(v) for v in values}))


def _repeats(seeds: pd.Series) -> str:
    counts = seeds.value_counts()
    return ", ".join(f"seed {s} ×{c}" for s, c in sorted(counts[counts > 1].items()))


def label(recipe: str, deviation: str) -> str:
    """`speedrun`, or `speedrun [compile=true]` for a row that is not its preset."""
    return f"{recipe} [{deviation}]" if isinstance(deviation, str) and deviation else recipe


def row_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs a row counts: one per seed (the latest, when a seed was run again)."""
    return runs.sort_values("start_time", kind="stable").drop_duplicates(["fingerprint", "device_kind", "seed"], keep="last")


def leaderboard(runs: pd.DataFrame, include_partial: bool = False) -> pd.DataFrame:
    """One row per (fingerprint, device kind). n counts seeds, and mean ± std are over those runs only;
    a seed run more than once counts once (its latest run) and is flagged in `repeated_seeds`. Rows of
    runs on a data subset or cut short are left out unless `include_partial`."""
    if runs.empty:
        return pd.DataFrame(columns=COLUMNS)
    defaults = {"fingerprint": runs["recipe"], "deviation": "", "partial": False, "start_time": 0,  # frames built by hand: one row per recipe
                "device_kind": runs["device"].map(device_kind) if "device" in runs else "?"}
    runs = runs.assign(**{k: v for k, v in defaults.items() if k not in runs.columns})
    runs = runs.assign(at_claim=(runs["test_acc"] >= runs["claimed_test_acc"]).where(runs["claimed_test_acc"].notna()),
                       partial=runs["partial"].fillna(False).astype(bool))
    if not include_partial:
        runs = runs[~runs["partial"]]
    if runs.empty:
        return pd.DataFrame(columns=COLUMNS)
    repeats = runs.groupby(["fingerprint", "device_kind"])["seed"].agg(_repeats).rename("repeated_seeds")
    counted = row_runs(runs).assign(label=lambda f: [label(r, d) for r, d in zip(f["recipe"], f["deviation"])])
    grouped = counted.groupby(["fingerprint", "device_kind"], sort=False)
    board = grouped.agg(
        recipe=("label", lambda s: s.mode().iloc[0]),
        model=("model", "first"), optimizer=("optimizer", "first"), aug=("aug", "first"), schedule=("schedule", "first"),
        epochs=("epochs", "first"), n_seeds=("seed", "count"), test_acc_mean=("test_acc", "mean"),
        test_acc_std=("test_acc", "std"), claimed_test_acc=("claimed_test_acc", "first"),
        claim_kind=("claim_kind", "first"),
        seeds_at_claim=("at_claim", "sum"), best_val_acc=("best_val_acc", "mean"),
        params=("params", "first"), train_time_s=("train_time_s", "mean"), images_per_s=("images_per_s", "mean"),
        time_to_val_99_s=("time_to_val_99_s", "mean"), reached_99=("time_to_val_99_s", "count"),
        time_to_val_995_s=("time_to_val_995_s", "mean"), reached_995=("time_to_val_995_s", "count"),
        device=("device", _joined), git_commit=("git_commit", _joined), run_ids=("run_id", lambda s: " ".join(s)),
        partial=("partial", "any"), tutorial=("tutorial", "first"),
    ).join(repeats).reset_index()
    board["vs_claim"] = board["test_acc_mean"] - board["claimed_test_acc"]
    tolerance = (2 * board["test_acc_std"].fillna(0)).clip(lower=NOISE_FLOOR)
    tolerance = tolerance.where(board["claim_kind"] != "target", 1e-6)  # float32 accuracies: k/10000 to ~1e-7
    board["meets_claim"] = (board["vs_claim"] >= -tolerance).where(board["claimed_test_acc"].notna())
    return board[COLUMNS].sort_values("test_acc_mean", ascending=False).reset_index(drop=True)


def _pct(value: float, digits: int = 2) -> str:
    return "—" if pd.isna(value) else f"{100 * value:.{digits}f}"


def _time_to(board: pd.DataFrame, level: str) -> list[str]:
    """Mean seconds over the seeds that got there, and how many of them did."""
    return [
        "—" if r == 0 else f"{t:.1f} ({r}/{n})" if t < 100 else f"{t:.0f} ({r}/{n})"
        for t, r, n in zip(board[f"time_to_val_{level}_s"], board[f"reached_{level}"], board["n_seeds"])
    ]


def markdown(board: pd.DataFrame) -> str:
    """The leaderboard as a readable Markdown table (full precision stays in the CSV)."""
    view = pd.DataFrame(
        {
            "recipe": board["recipe"],
            "device": board["device_kind"],
            "model": board["model"],
            "optimizer / aug / schedule": board["optimizer"] + " / " + board["aug"] + " / " + board["schedule"],
            "epochs": board["epochs"],
            "n": [f"{n} ⚠ {r}" if isinstance(r, str) and r else str(n) for n, r in zip(board["n_seeds"], board["repeated_seeds"])],
            "test acc % (mean ± std)": [
                f"{_pct(m)} ± {_pct(s)}" if not pd.isna(s) else f"{_pct(m)} (n=1)"
                for m, s in zip(board["test_acc_mean"], board["test_acc_std"])
            ],
            "claimed %": [("≥" if k == "target" else "") + _pct(c) for c, k in zip(board["claimed_test_acc"], board["claim_kind"])],
            # rounded, then + 0.0: a mean on its target reads +0.00, not -0.00
            "Δ vs claim (pp)": [_claim(v, ok) for v, ok in zip(board["vs_claim"], board["meets_claim"])],
            "runs ≥ claim": [
                "—" if pd.isna(c) else f"{int(k)}/{n}" for c, k, n in zip(board["claimed_test_acc"], board["seeds_at_claim"], board["n_seeds"])
            ],
            "best val %": board["best_val_acc"].map(_pct),
            "params": board["params"].map(lambda v: f"{v:,}"),
            "train s": board["train_time_s"].map(lambda v: f"{v:.1f}" if v < 100 else f"{v:.0f}"),
            "img/s": board["images_per_s"].map(lambda v: f"{v:,.0f}"),
            "s to 99% val": _time_to(board, "99"),
            "s to 99.5% val": _time_to(board, "995"),
        }
    )
    return view.to_markdown(index=False)


def _claim(value: float, ok: object) -> str:
    return "—" if pd.isna(value) else f"{round(100 * value, 2) + 0.0:+.2f} {'✓' if ok else '✗'}"


def summary(board: pd.DataFrame) -> Table:
    """The leaderboard's headline for the console: what a row is, how good, how sure, how big and how long.

    Seven columns that fit 100; the full table (optimizer, schedule, claims, times to 99%, run ids) is in
    leaderboard.md and .csv."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for name, justify in (("recipe", "left"), ("device", "left"), ("n", "right"), ("test acc %", "right"),
                          ("vs claim", "right"), ("params", "right"), ("train s", "right")):
        recipe = name == "recipe"  # a long [deviation] ends in …
        table.add_column(name, justify=justify, no_wrap=recipe, overflow="ellipsis" if recipe else "fold",  # type: ignore[arg-type]
                         max_width=RECIPE_WIDTH if recipe else None)
    for row in board.itertuples():
        spread = f" ± {_pct(row.test_acc_std)}" if not pd.isna(row.test_acc_std) else ""
        table.add_row(escape(row.recipe), escape(row.device_kind),  # `speedrun [compile=true]` is not markup
                      str(row.n_seeds), f"{_pct(row.test_acc_mean)}{spread}",
                      _claim(row.vs_claim, row.meets_claim), f"{row.params:,}",
                      f"{row.train_time_s:.1f}" if row.train_time_s < 100 else f"{row.train_time_s:.0f}")
    return table


def recipe_notes(board: pd.DataFrame) -> str:
    """What each seed recipe is and what its tutorial claimed, under the table."""
    seen, lines = set(), []
    for recipe, text in zip(board["recipe"], board["tutorial"]):
        name = recipe.split(" [")[0]
        if isinstance(text, str) and text and name not in seen:
            seen.add(name)
            lines.append(f"- **{name}**: {text}")
    return "\n".join(lines)

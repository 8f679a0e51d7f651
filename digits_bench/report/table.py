"""Aggregate runs into the leaderboard: one row per recipe, seeds pooled."""
from __future__ import annotations

import pandas as pd

COLUMNS = ["recipe", "model", "optimizer", "aug", "schedule", "epochs", "n_seeds", "test_acc_mean", "test_acc_std",
           "claimed_test_acc", "vs_claim", "best_val_acc", "params", "train_time_s", "images_per_s",
           "time_to_val_99_s", "reached_99", "device", "git_commit", "run_ids"]


def _joined(values: pd.Series) -> str:
    return ", ".join(sorted({str(v) for v in values}))


def leaderboard(runs: pd.DataFrame) -> pd.DataFrame:
    if runs.empty:
        return pd.DataFrame(columns=COLUMNS)
    grouped = runs.groupby("recipe", sort=False)
    board = grouped.agg(
        model=("model", "first"), optimizer=("optimizer", "first"), aug=("aug", "first"), schedule=("schedule", "first"),
        epochs=("epochs", "first"), n_seeds=("seed", "nunique"), test_acc_mean=("test_acc", "mean"),
        test_acc_std=("test_acc", "std"), claimed_test_acc=("claimed_test_acc", "first"), best_val_acc=("best_val_acc", "mean"),
        params=("params", "first"), train_time_s=("train_time_s", "mean"), images_per_s=("images_per_s", "mean"),
        time_to_val_99_s=("time_to_val_99_s", "mean"), reached_99=("time_to_val_99_s", "count"),
        device=("device", _joined), git_commit=("git_commit", _joined), run_ids=("run_id", lambda s: " ".join(s)),
    ).reset_index()
    board["vs_claim"] = board["test_acc_mean"] - board["claimed_test_acc"]
    return board[COLUMNS].sort_values("test_acc_mean", ascending=False).reset_index(drop=True)


def _pct(value: float, digits: int = 2) -> str:
    return "—" if pd.isna(value) else f"{100 * value:.{digits}f}"


def markdown(board: pd.DataFrame) -> str:
    """The leaderboard as a readable Markdown table (full precision stays in the CSV)."""
    view = pd.DataFrame(
        {
            "recipe": board["recipe"],
            "model": board["model"],
            "optimizer / aug / schedule": board["optimizer"] + " / " + board["aug"] + " / " + board["schedule"],
            "epochs": board["epochs"],
            "n": board["n_seeds"],
            "test acc % (mean ± std)": [
                f"{_pct(m)} ± {_pct(s)}" if not pd.isna(s) else f"{_pct(m)} (n=1)"
                for m, s in zip(board["test_acc_mean"], board["test_acc_std"])
            ],
            "claimed %": board["claimed_test_acc"].map(_pct),
            "Δ vs claim (pp)": board["vs_claim"].map(lambda v: "—" if pd.isna(v) else f"{100 * v:+.2f}"),
            "best val %": board["best_val_acc"].map(_pct),
            "params": board["params"].map(lambda v: f"{v:,}"),
            "train s": board["train_time_s"].map(lambda v: f"{v:.0f}"),
            "img/s": board["images_per_s"].map(lambda v: f"{v:,.0f}"),
            "s to 99% val": [
                "—" if r == 0 else f"{t:.0f} ({r}/{n})"
                for t, r, n in zip(board["time_to_val_99_s"], board["reached_99"], board["n_seeds"])
            ],
        }
    )
    return view.to_markdown(index=False)

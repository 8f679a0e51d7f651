"""Leaderboard figures: accuracy vs size, accuracy vs time (Pareto front), validation curves, Optuna studies."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402


def _scatter(board: pd.DataFrame, x: str, xlabel: str, path: Path, pareto: bool = False) -> None:
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.errorbar(board[x], 100 * board["test_acc_mean"], yerr=100 * board["test_acc_std"].fillna(0), fmt="o", capsize=3)
    for _, row in board.iterrows():
        ax.annotate(row["recipe"], (row[x], 100 * row["test_acc_mean"]), fontsize=7, xytext=(4, 2), textcoords="offset points")
    if pareto:
        front = pareto_front(board, x)
        ax.plot(front[x], 100 * front["test_acc_mean"], "r--", drawstyle="steps-post", label="Pareto front")
        ax.legend()
    ax.set(xscale="log", xlabel=xlabel, ylabel="test accuracy % (mean ± std over seeds)")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pareto_front(board: pd.DataFrame, cost: str) -> pd.DataFrame:
    """Recipes no other recipe beats on both accuracy and cost."""
    ordered = board.sort_values([cost, "test_acc_mean"], ascending=[True, False])
    best, keep = -np.inf, []
    for index, row in ordered.iterrows():
        if row["test_acc_mean"] > best:
            best = row["test_acc_mean"]
            keep.append(index)
    return ordered.loc[keep]


def accuracy_vs_params(board: pd.DataFrame, path: Path) -> None:
    _scatter(board, "params", "trainable parameters", path)


def accuracy_vs_time(board: pd.DataFrame, path: Path) -> None:
    _scatter(board, "train_time_s", "training time, s (mean over seeds, evaluation excluded)", path, pareto=True)


def validation_curves(runs: pd.DataFrame, curves: dict[str, list[float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 5.5))
    ax.set_prop_cycle(color=plt.cm.tab20.colors)  # one colour per recipe: there are more than ten
    for recipe, group in runs.groupby("recipe"):
        series = [curves[r] for r in group["run_id"] if curves.get(r)]
        if not series:  # carried over from a runs.csv written before curves were kept
            continue
        length = min(len(s) for s in series)
        mean = np.mean([s[:length] for s in series], axis=0)
        ax.plot(range(1, length + 1), 100 * mean, marker=".", label=f"{recipe} (n={len(series)})")
    ax.set(xlabel="epoch", ylabel="validation accuracy % (mean over seeds)", ylim=(90, 100))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def study_plots(study: optuna.Study, out: Path) -> list[Path]:
    """Optuna's own optimisation history and parameter importances for one study."""
    written = []
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return written

    def save(ax: plt.Axes, kind: str) -> None:
        path = out / f"study_{study.study_name}_{kind}.png"
        ax.figure.set_size_inches(8, 5)
        ax.figure.tight_layout()
        ax.figure.savefig(path, dpi=120)
        plt.close(ax.figure)
        written.append(path)

    save(optuna.visualization.matplotlib.plot_optimization_history(study), "history")
    if len(complete) >= 3 and any(len({str(t.params.get(k)) for t in complete}) > 1 for k in complete[0].params):
        save(optuna.visualization.matplotlib.plot_param_importances(study), "importances")
    return written

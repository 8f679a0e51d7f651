"""Leaderboard figures: accuracy vs size, accuracy vs time (Pareto front), validation curves, Optuna studies."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
import optuna
import pandas as pd
from adjustText import adjust_text
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from digits_bench.tracking.figures import new_figure

# CPU and GPU rows told apart by marker and colour (and line style for curves), in every figure.
CPU_STYLE = {"marker": "o", "color": "tab:blue", "linestyle": "-"}
GPU_STYLE = {"marker": "^", "color": "tab:red", "linestyle": "--"}


def _log_percent_axis(ax: Axes) -> None:
    """Plain numbers on a log y-axis; minor ticks labelled only at 2, 3 and 5 when it spans more than 1.3 decades
    (their labels would otherwise run into the next power of ten's)."""
    low, high = ax.get_ylim()
    wide = np.log10(high / max(low, 1e-9)) > 1.3

    def minor(value: float, _: int) -> str:
        lead = round(value / 10 ** np.floor(np.log10(value) + 1e-9))
        return f"{value:g}" if not wide or lead in (2, 3, 5) else ""

    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(minor))
    ax.tick_params(axis="y", which="minor", labelsize=7)


def _style(kind: str) -> dict:
    return CPU_STYLE if kind == "cpu" else GPU_STYLE


def _device_legend(ax: Axes, kinds: list[str], extra: list | None = None) -> None:
    handles = [Line2D([], [], linestyle="none", markersize=7, marker=_style(k)["marker"], color=_style(k)["color"],
                      label="CPU" if k == "cpu" else f"GPU: {k}") for k in sorted(set(kinds), key=lambda k: (k != "cpu", k))]
    ax.legend(handles=handles + (extra or []), loc="upper right", fontsize=8, framealpha=0.9)


def _scatter(board: pd.DataFrame, x: str, xlabel: str, path: Path, pareto: bool = False) -> None:
    """Test error on a log scale (MNIST's recipes differ by tenths of a percent near 99%, by whole
    percents below); labels pushed apart by adjustText so none is printed over another."""
    fig = new_figure(figsize=(11, 7.5))
    ax = fig.subplots()
    error = 100 * (1 - board["test_acc_mean"])
    spread = 100 * board["test_acc_std"].fillna(0)
    texts = []
    for kind, rows in board.groupby("device_kind"):
        style = _style(str(kind))
        ax.errorbar(rows[x], error[rows.index], yerr=spread[rows.index], fmt=style["marker"], color=style["color"], capsize=3,
                    markersize=6, linestyle="none")
    for index, row in board.iterrows():
        texts.append(ax.text(row[x], error[index], row["recipe"], fontsize=7, color=_style(row["device_kind"])["color"]))
    extra = []
    if pareto:
        front = pareto_front(board, x)
        (line,) = ax.plot(front[x], 100 * (1 - front["test_acc_mean"]), color="0.4", linestyle=":", drawstyle="steps-post",
                          label="Pareto front (faster and more accurate than any other)")
        extra.append(line)
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="test error % (mean ± std over seeds; log scale, lower is better)")
    _log_percent_axis(ax)
    ax.grid(alpha=0.3, which="both")
    _device_legend(ax, board["device_kind"].tolist(), extra)
    adjust_text(texts, ax=ax, expand=(1.2, 1.4), arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5})
    fig.tight_layout()
    fig.savefig(path, dpi=120)


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


# One panel per model family, so each holds few enough curves to tell apart.
FAMILIES = {"linear and MLPs": ("linear", "mlp_"), "small CNNs": ("lenet", "cnn_bn", "cnn_tf"), "speedrun CNN": ("speedrun",),
            "VGG-style CNNs": ("vgg",), "best (cnn_best)": ("cnn_best",)}


def family(model: str) -> str:
    for name, prefixes in FAMILIES.items():
        if str(model).startswith(prefixes):
            return name
    return "other"


def validation_curves(runs: pd.DataFrame, curves: dict[str, list[float]], path: Path) -> None:
    """Mean validation error per epoch of each leaderboard row (`row`, `device_kind`, `model` columns), one
    panel per model family; a log scale shows a first epoch at 90% error and a last at 0.5% in one panel.
    CPU solid, GPU dashed. Runs carried without their curve are not in the mean (the legend counts them)."""
    rows = []
    for (label, kind), group in runs.groupby(["row", "device_kind"], sort=True):
        series = [curves[r] for r in group["run_id"] if len(curves.get(r) or []) > 1]  # an ensemble has one value, no curve
        if series:
            length = min(len(s) for s in series)
            error = 100 * (1 - np.mean([s[:length] for s in series], axis=0))
            rows.append((family(group["model"].iloc[0]), label, str(kind), error, len(series)))
    names = [f for f in [*FAMILIES, "other"] if any(r[0] == f for r in rows)]
    if not names:
        names = ["(no curves)"]
    cols = min(2, len(names))
    fig = new_figure(figsize=(7.5 * cols, 5 * -(-len(names) // cols)))
    axes = fig.subplots(-(-len(names) // cols), cols, squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names):
        panel = [r for r in rows if r[0] == name]
        colours = matplotlib.colormaps["tab10"].colors
        for i, (_, label, kind, mean, n) in enumerate(panel):
            style = _style(kind)
            device = "CPU" if kind == "cpu" else "GPU"
            ax.plot(range(1, len(mean) + 1), mean, color=colours[i % len(colours)], linestyle=style["linestyle"],
                    marker=style["marker"], markersize=3.5, label=f"{label} · {device} ({n} {'run' if n == 1 else 'runs'})")
        ax.set(title=name, xlabel="epoch", ylabel="validation error % (mean over runs; log scale)", yscale="log")
        _log_percent_axis(ax)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
        if panel:
            ax.legend(fontsize=7, loc="upper right", framealpha=0.9)
    fig.suptitle("validation error per epoch, one panel per model family (lower is better): solid = CPU runs, dashed = GPU runs", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))  # room for the title above the panels' own
    fig.savefig(path, dpi=110)


def study_plots(study: optuna.Study, out: Path) -> list[Path]:
    """Optuna's own optimisation history and parameter importances for one study (drawn through pyplot, which
    Optuna uses: each figure closed once saved)."""
    import matplotlib.pyplot as plt

    written = []
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return written

    def save(ax: Axes, kind: str) -> None:
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

"""The pictures and tables logged with every run: curves, confusion matrix, per-class report, mistakes."""
from __future__ import annotations

import tempfile
from pathlib import Path

from typing import Any

import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient

from digits_bench.names import Metric, acc, loss


def new_figure(**kwargs: Any) -> Figure:
    """A figure drawn to files only, on an Agg canvas of its own: no pyplot state to close, and no backend chosen for
    the whole process on import (report/plots.py draws through this too)."""
    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def metric_history(client: MlflowClient, run_id: str, keys: list[str]) -> pd.DataFrame:
    """One row per logged epoch, one column per metric, read back from MLflow itself; the epochs are MLflow's steps
    (from 0, as the checkpoints' `best-epochNN` count them)."""
    frames = []
    for key in keys:
        history = client.get_metric_history(run_id, key)
        if history:
            frames.append(pd.Series({m.step: m.value for m in sorted(history, key=lambda m: m.step)}, name=key))
    frame = pd.concat(frames, axis=1).sort_index() if frames else pd.DataFrame()
    frame.index.name = "epoch"
    return frame


def plot_curves(history: pd.DataFrame, path: Path) -> None:
    fig = new_figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for ax, (what, name) in zip(axes, (("loss", loss), ("acc", acc))):
        for split in ("train", "val"):
            key = name(split)
            if key in history:
                ax.plot(history.index, history[key], marker="o", label=split)
        ax.set(xlabel="epoch", ylabel=what, title=f"{what} per epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_confusion(confusion: torch.Tensor, path: Path) -> None:
    n = confusion.shape[0]
    fig = new_figure(figsize=(6.5, 5.5))
    ax = fig.subplots()
    image = ax.imshow(confusion.numpy(), cmap="Blues")
    for i in range(n):
        for j in range(n):
            value = int(confusion[i, j])
            ax.text(j, i, value, ha="center", va="center", fontsize=7, color="white" if value > confusion.max() / 2 else "black")
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true", title="test confusion matrix")
    fig.colorbar(image)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_misclassified(images: torch.Tensor, labels: torch.Tensor, preds: torch.Tensor, probs: torch.Tensor, path: Path, limit: int = 64) -> int:
    """The first `limit` mistakes as one montage image with a caption per digit (one axes: 64 subplots cost seconds)."""
    wrong = (preds != labels).nonzero().flatten()[:limit]
    cols, size, caption = 8, images.shape[-1], 12
    rows = max(1, -(-len(wrong) // cols))
    montage = torch.full((rows * (size + caption), cols * (size + 4)), 0, dtype=images.dtype)
    for k, index in enumerate(wrong.tolist()):
        top, left = (k // cols) * (size + caption) + caption, (k % cols) * (size + 4) + 2
        montage[top : top + size, left : left + size] = images[index]
    fig = new_figure(figsize=(cols * 1.3, rows * 1.5))
    ax = fig.subplots()
    ax.imshow(montage.numpy(), cmap="gray_r", interpolation="nearest")
    ax.axis("off")
    for k, index in enumerate(wrong.tolist()):
        ax.text((k % cols) * (size + 4) + 2 + size / 2, (k // cols) * (size + caption) + caption - 2,
                f"{int(labels[index])}→{int(preds[index])} ({float(probs[index]):.2f})", ha="center", va="bottom", fontsize=8)
    ax.set_title(f"misclassified test digits: true→predicted (confidence), {len(wrong)} of {int((preds != labels).sum())}")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return len(wrong)


def class_report(outputs: dict[str, torch.Tensor]) -> pd.DataFrame:
    confusion = outputs["confusion"]
    frame = pd.DataFrame(
        {
            "precision": outputs["precision"].numpy(),
            "recall": outputs["recall"].numpy(),
            "f1": outputs["f1"].numpy(),
            "support": confusion.sum(dim=1).numpy(),
        }
    )
    frame.index.name = "class"
    frame.loc["macro avg"] = [*frame[["precision", "recall", "f1"]].mean(), frame["support"].sum()]
    frame["support"] = frame["support"].astype(int)
    return frame


def log_run_report(client: MlflowClient, run_id: str, outputs: dict[str, torch.Tensor], test_images: torch.Tensor,
                   test_labels: torch.Tensor, figures: bool = True) -> None:
    """Write every table (and, with `figures`, every picture: most of the cost) into a temporary folder and
    log it under the run's `report/`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        history = metric_history(client, run_id, [Metric.TRAIN_LOSS, Metric.VAL_LOSS, Metric.TRAIN_ACC, Metric.VAL_ACC])
        history.to_csv(out / "history.csv")
        pd.DataFrame(outputs["confusion"].numpy()).rename_axis(index="true", columns="predicted").to_csv(out / "confusion_matrix.csv")
        report = class_report(outputs)
        report.to_csv(out / "classification_report.csv")
        (out / "classification_report.md").write_text(report.to_markdown(floatfmt=".4f"))
        if figures:
            plot_curves(history, out / "curves.png")
            plot_confusion(outputs["confusion"], out / "confusion_matrix.png")
            plot_misclassified(test_images.cpu(), test_labels.cpu(), outputs["preds"], outputs["probs"], out / "misclassified.png")
        client.log_artifacts(run_id, str(out), "report")


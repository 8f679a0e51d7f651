"""MLflow runs -> one pandas row per finished, test-scored run (sweep trials never touch the test set, so they drop out)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

# One row per run; runs.csv keeps them in this order so an older file can be read back (missing columns empty).
RUN_COLUMNS = ["recipe", "model", "optimizer", "aug", "schedule", "epochs", "batch_size", "seed", "test_acc", "best_val_acc",
               "claimed_test_acc", "claim_kind", "tutorial", "params", "train_time_s", "images_per_s", "time_to_val_99_s", "time_to_val_995_s",
               "device", "git_commit", "run_id", "start_time", "val_curve"]
TEXT_COLUMNS = ["recipe", "model", "optimizer", "aug", "schedule", "claim_kind", "tutorial", "device", "git_commit", "run_id", "val_curve"]


def recipe_of(tags: dict[str, str]) -> str:
    """compare's recipe name, else the preset's, else the run name (which spells out the ad-hoc choices)."""
    if tags.get("compare.recipe"):
        return tags["compare.recipe"]
    if tags.get("recipe") and tags["recipe"] != "custom":
        return tags["recipe"]
    return tags.get("mlflow.runName", "custom")


def _float(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "None", "null") else float("nan")
    except ValueError:
        return float("nan")


def load_runs(client: MlflowClient, experiment: str) -> tuple[pd.DataFrame, dict[str, list[float]]]:
    """(one row per run, {run_id: validation accuracy per epoch})."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return pd.DataFrame(columns=RUN_COLUMNS), {}
    runs = client.search_runs([found.experiment_id], filter_string="attributes.status = 'FINISHED'", max_results=10_000)
    rows, curves = [], {}
    for run in runs:
        metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
        if "test/acc" not in metrics:
            continue
        history = sorted(client.get_metric_history(run.info.run_id, "val/acc"), key=lambda m: m.step)
        curves[run.info.run_id] = [m.value for m in history]
        rows.append(
            {
                "recipe": recipe_of(tags),
                "model": params.get("model.name"),
                "optimizer": tags.get("choice.optimizer"),
                "aug": tags.get("choice.aug"),
                "schedule": tags.get("choice.schedule"),
                "epochs": int(params.get("trainer.max_epochs", 0)),
                "batch_size": int(params.get("data.batch_size", 0)),
                "seed": int(params.get("seed", -1)),
                "test_acc": metrics["test/acc"],
                "best_val_acc": max(curves[run.info.run_id], default=float("nan")),
                "claimed_test_acc": _float(params.get("recipe.claimed_test_acc")),
                "claim_kind": params.get("recipe.claim_kind", "tutorial"),
                "tutorial": params.get("recipe.tutorial") if params.get("recipe.tutorial") not in (None, "None") else "",
                "params": int(params.get("n_params", 0)),
                "train_time_s": metrics.get("time/train_s", float("nan")),
                "images_per_s": metrics.get("time/images_per_s", float("nan")),
                "time_to_val_99_s": metrics.get("time/to_val_acc_0.99_s", float("nan")),
                "time_to_val_995_s": metrics.get("time/to_val_acc_0.995_s", float("nan")),
                "device": tags.get("device", "?"),
                "git_commit": tags.get("git_commit", "?")[:12],
                "run_id": run.info.run_id,
                "start_time": run.info.start_time,
                "val_curve": " ".join(f"{v:.5f}" for v in curves[run.info.run_id]),
            }
        )
    return pd.DataFrame(rows, columns=RUN_COLUMNS), curves


def with_archive(runs: pd.DataFrame, curves: dict[str, list[float]], archive: Path) -> tuple[pd.DataFrame, dict[str, list[float]], int]:
    """Add the runs of an earlier report (its runs.csv) that this store does not hold.

    MLflow stores are per machine: runs made on a GPU box or in an earlier checkout live on only as the
    rows `make report` committed. Keeping them makes results/ accumulate instead of shrinking to whatever
    this machine ran; a run in both places is taken from the store. Returns (runs, curves, rows carried).
    """
    if not archive.is_file():
        return runs, curves, 0
    old = pd.read_csv(archive, dtype=dict.fromkeys(TEXT_COLUMNS, str))  # a commit or run id of digits stays text
    if "run_id" not in old.columns:
        raise ValueError(f"{archive} has no run_id column; pass --no-archive to build the report from the store alone")
    old = old.reindex(columns=RUN_COLUMNS)
    old = old[~old["run_id"].isin(runs["run_id"])].copy()
    old[TEXT_COLUMNS] = old[TEXT_COLUMNS].fillna({"device": "?", "git_commit": "?"}).fillna("")
    curves = dict(curves)
    for run_id, curve in zip(old["run_id"], old["val_curve"]):
        if curve.strip():
            curves[run_id] = [float(v) for v in curve.split()]
    frames = [frame for frame in (runs, old) if not frame.empty]
    return (pd.concat(frames, ignore_index=True) if frames else runs), curves, len(old)

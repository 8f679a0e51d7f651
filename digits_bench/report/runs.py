"""MLflow runs -> one pandas row per finished, test-scored run (sweep trials never touch the test set, so they drop out)."""
from __future__ import annotations

import pandas as pd
from mlflow.tracking import MlflowClient


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
        return pd.DataFrame(), {}
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
                "tutorial": params.get("recipe.tutorial") if params.get("recipe.tutorial") not in (None, "None") else "",
                "params": int(params.get("n_params", 0)),
                "train_time_s": metrics.get("time/train_s", float("nan")),
                "images_per_s": metrics.get("time/images_per_s", float("nan")),
                "time_to_val_99_s": metrics.get("time/to_val_acc_0.99_s", float("nan")),
                "device": tags.get("device", "?"),
                "git_commit": tags.get("git_commit", "?")[:12],
                "run_id": run.info.run_id,
                "start_time": run.info.start_time,
            }
        )
    return pd.DataFrame(rows), curves

"""MLflow runs -> one pandas row per finished, test-scored run (sweep trials never touch the test set, so they drop out)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from digits_bench.config.fingerprint import training_keys
from digits_bench.report.identity import device_kind, identify, identify_recorded
from digits_bench.names import LEADERBOARD_VAL_ACC, Metric, Param, Tag, choice, time_to_val_acc

# One row per run; runs.csv keeps them in this order so an older file can be read back (missing columns empty).
RUN_COLUMNS = ["recipe", "model", "optimizer", "aug", "schedule", "epochs", "batch_size", "seed", "test_acc", "best_val_acc",
               "claimed_test_acc", "claim_kind", "tutorial", "params", "train_time_s", "images_per_s", "time_to_val_99_s", "time_to_val_995_s",
               "device", "git_commit", "run_id", "start_time", "val_curve", "device_kind", "fingerprint", "deviation", "partial", "config"]
NUMERIC_COLUMNS = ["epochs", "batch_size", "seed", "test_acc", "best_val_acc", "claimed_test_acc", "params", "train_time_s",
                   "images_per_s", "time_to_val_99_s", "time_to_val_995_s", "start_time"]
TEXT_COLUMNS = ["recipe", "model", "optimizer", "aug", "schedule", "claim_kind", "tutorial", "device", "git_commit", "run_id", "val_curve",
                "device_kind", "fingerprint", "deviation", "config"]
# The time-to-accuracy columns, by the validation accuracy they time (the training clock always logs these).
TIME_TO_VAL = dict(zip(("time_to_val_99_s", "time_to_val_995_s"), LEADERBOARD_VAL_ACC))


def recipe_of(tags: dict[str, str], model: str | None = None) -> str:
    """compare's recipe name, else the preset's, else the model's (the row's deviation spells out the rest)."""
    if tags.get(Tag.COMPARE_RECIPE):
        return tags[Tag.COMPARE_RECIPE]
    if tags.get(Tag.RECIPE) and tags[Tag.RECIPE] != "custom":
        return tags[Tag.RECIPE]
    return model or tags.get(Tag.RUN_NAME, "custom")


def _float(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "None", "null") else float("nan")
    except ValueError:
        return float("nan")


def _run_config(client: MlflowClient, run_id: str) -> dict | None:
    """The run's resolved config.yaml, or None for runs that have none (ensembles)."""
    try:
        with tempfile.TemporaryDirectory(prefix="digits_bench_report_") as tmp:
            loaded = yaml.safe_load(Path(client.download_artifacts(run_id, "config.yaml", tmp)).read_text())
    except (MlflowException, OSError, yaml.YAMLError):
        return None
    return loaded if isinstance(loaded, dict) else None


def load_runs(client: MlflowClient, experiment: str) -> tuple[pd.DataFrame, dict[str, list[float]]]:
    """(one row per run, with its fingerprint, device kind and deviation; {run_id: validation accuracy per epoch})."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return pd.DataFrame(columns=RUN_COLUMNS), {}
    runs = client.search_runs([found.experiment_id], filter_string="attributes.status = 'FINISHED'", max_results=10_000)
    rows, curves, configs = [], {}, {}
    for run in runs:
        metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
        if Metric.TEST_ACC not in metrics:
            continue
        history = sorted(client.get_metric_history(run.info.run_id, Metric.VAL_ACC), key=lambda m: m.step)
        curves[run.info.run_id] = [m.value for m in history]
        config = _run_config(client, run.info.run_id)
        if config is not None:
            configs[run.info.run_id] = (training_keys(config), {k.removeprefix(Tag.CHOICE_PREFIX): v for k, v in tags.items()
                                                                if k.startswith(Tag.CHOICE_PREFIX)})
        rows.append(
            {
                "recipe": recipe_of(tags, params.get(Param.MODEL)),
                "model": params.get(Param.MODEL),
                "optimizer": tags.get(choice("optimizer")),
                "aug": tags.get(choice("aug")),
                "schedule": tags.get(choice("schedule")),
                "epochs": int(params.get(Param.EPOCHS, 0)),
                "batch_size": int(params.get(Param.BATCH_SIZE, 0)),
                "seed": int(params.get(Param.SEED, -1)),
                "test_acc": metrics[Metric.TEST_ACC],
                "best_val_acc": max(curves[run.info.run_id], default=float("nan")),
                "claimed_test_acc": _float(params.get(Param.CLAIMED_TEST_ACC)),
                "claim_kind": params.get(Param.CLAIM_KIND, "tutorial"),
                "tutorial": params.get(Param.TUTORIAL) if params.get(Param.TUTORIAL) not in (None, "None", "null") else "",
                "params": int(params.get(Param.N_PARAMS, 0)),
                "train_time_s": metrics.get(Metric.TRAIN_S, float("nan")),
                "images_per_s": metrics.get(Metric.IMAGES_PER_S, float("nan")),
                **{column: metrics.get(time_to_val_acc(level), float("nan")) for column, level in TIME_TO_VAL.items()},
                "device": tags.get(Tag.DEVICE, "?"),
                "git_commit": tags.get(Tag.GIT_COMMIT, "?")[:12],
                "run_id": run.info.run_id,
                "start_time": run.info.start_time,
                "val_curve": " ".join(f"{v:.5f}" for v in curves[run.info.run_id]),
                "device_kind": device_kind(tags.get(Tag.DEVICE, "?")),
                "preset": tags.get(Tag.RECIPE) if tags.get(Tag.RECIPE) not in (None, "custom") else "",
            }
        )
    frame = pd.DataFrame(rows, columns=[*RUN_COLUMNS, "preset"])
    return identify(frame, configs).reindex(columns=RUN_COLUMNS), curves


def with_archive(runs: pd.DataFrame, curves: dict[str, list[float]], archive: Path) -> tuple[pd.DataFrame, dict[str, list[float]], int]:
    """Add the runs of an earlier report (its runs.csv) that this store does not hold.

    MLflow stores are per machine: runs made on a GPU box or in an earlier checkout live on only as the
    rows `make report` committed. Keeping them makes results/ accumulate instead of shrinking to whatever
    this machine ran; a run in both places is taken from the store. Returns (runs, curves, rows carried).
    """
    if not archive.is_file():
        return runs, curves, 0
    fix = f"restore it (git checkout {archive}) or pass --no-archive to build the report from the store alone"
    try:
        old = pd.read_csv(archive, dtype=dict.fromkeys(TEXT_COLUMNS, str))  # a commit or run id of digits stays text
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:  # EmptyDataError is a ValueError
        raise ValueError(f"{archive} is not a readable runs.csv ({type(err).__name__}: {str(err).splitlines()[0][:120]}); {fix}") from None
    if "run_id" not in old.columns:
        raise ValueError(f"{archive} has no run_id column; {fix}")
    old = old.reindex(columns=RUN_COLUMNS)
    for column in NUMERIC_COLUMNS:  # what the leaderboard computes with: numbers, or empty
        numbers = pd.to_numeric(old[column], errors="coerce")
        bad = old[column].notna() & numbers.isna()
        if bad.any():
            row = int(bad.idxmax())
            raise ValueError(f"{archive}: row {row + 2}, {column} {old[column][row]!r} is not a number; {fix}")
        old[column] = numbers
    if old["run_id"].isna().any() or not old["test_acc"].dropna().between(0, 1).all():
        raise ValueError(f"{archive}: a row without a run_id or with a test_acc outside [0, 1]; {fix}")
    old = old[~old["run_id"].isin(runs["run_id"])].copy()
    old[TEXT_COLUMNS] = old[TEXT_COLUMNS].fillna({"device": "?", "git_commit": "?"}).fillna("")
    old["partial"] = old["partial"].map(lambda v: str(v).strip().lower() == "true")
    old = identify_recorded(old)
    curves = dict(curves)
    for run_id, curve in zip(old["run_id"], old["val_curve"]):
        if curve.strip():
            curves[run_id] = [float(v) for v in curve.split()]
    frames = [frame for frame in (runs, old) if not frame.empty]
    return (pd.concat(frames, ignore_index=True) if frames else runs), curves, len(old)

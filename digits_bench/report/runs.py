"""MLflow runs -> one pandas row per finished, test-scored run (sweep trials never touch the test set, so they drop out)."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from digits_bench.config.fingerprint import GROUPS, columns_fingerprint, composed, deviation, device_kind, fingerprint, is_partial, model_default, preset, training_keys
from digits_bench.names import LEADERBOARD_VAL_ACC, Metric, Param, Tag, choice, time_to_val_acc

# One row per run; runs.csv keeps them in this order so an older file can be read back (missing columns empty).
RUN_COLUMNS = ["recipe", "model", "optimizer", "aug", "schedule", "epochs", "batch_size", "seed", "test_acc", "best_val_acc",
               "claimed_test_acc", "claim_kind", "tutorial", "params", "train_time_s", "images_per_s", "time_to_val_99_s", "time_to_val_995_s",
               "device", "git_commit", "run_id", "start_time", "val_curve", "device_kind", "fingerprint", "deviation", "partial", "config"]
NUMERIC_COLUMNS = ["epochs", "batch_size", "seed", "test_acc", "best_val_acc", "claimed_test_acc", "params", "train_time_s",
                   "images_per_s", "time_to_val_99_s", "time_to_val_995_s", "start_time"]
TEXT_COLUMNS = ["recipe", "model", "optimizer", "aug", "schedule", "claim_kind", "tutorial", "device", "git_commit", "run_id", "val_curve",
                "device_kind", "fingerprint", "deviation", "config"]
# What a run recorded in runs.csv before fingerprints: a carried row without one is fingerprinted from these.
RECORDED = ["recipe", "model", "optimizer", "aug", "schedule", "epochs", "batch_size"]
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


def config_text(keys: dict[str, str], choices: dict[str, str]) -> str:
    """What runs.csv keeps of a run's config: its training keys and group choices, enough to regroup
    the run after its MLflow store is gone, whatever keys later versions add."""
    return json.dumps({"choices": choices, "keys": keys}, sort_keys=True, separators=(",", ":"))


def config_of_text(text: str) -> tuple[dict[str, str], dict[str, str]] | None:
    try:
        loaded = json.loads(text)
        return {k: str(v) for k, v in loaded["keys"].items()}, {k: str(v) for k, v in loaded["choices"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _reference_trainer(choices: dict[str, str], kind: str) -> tuple[dict[str, str], str]:
    """Runs are compared with their preset on their kind of device: trainer=cpu on a CPU (where auto is
    the same), trainer=gpu on a GPU (so a GPU run with trainer=auto shows it: fp32 instead of bf16)."""
    reference = "cpu" if kind == "cpu" else "gpu"
    choices = dict(choices)
    if kind == "cpu" and choices.get("trainer") == "auto":
        choices["trainer"] = "cpu"
    return choices, reference


def identify(frame: pd.DataFrame, configs: dict[str, tuple[dict[str, str], dict[str, str]]]) -> pd.DataFrame:
    """Fill fingerprint, deviation and partial for every run.

    The reference a run is compared with: its preset composed today (`experiment=<recipe>`, the
    trainer of its device kind) when it was made from one; for a run made without one, the defaults
    with its model; for a `compare` recipe of its own name (`--study`, ad-hoc overrides), the most
    common configuration among that recipe's runs. A preset reference does not depend on which
    other runs happen to be in the store, and shows drift: a run made before its preset changed says
    how it differs. A key a run's config lacks (added to the code after it ran) takes its default
    today, so new keys do not split rows. Runs without a config (ensembles) are fingerprinted from what
    they recorded.
    """
    frame = frame.copy()
    majority: dict[tuple[str, str], str] = {}
    known = frame[frame["run_id"].isin(configs)]
    for key, group in known.sort_values("start_time").groupby(["recipe", "device_kind"]):
        prints = [fingerprint(with_new_defaults(*configs[r])) for r in group["run_id"]]
        majority[key] = group["run_id"].iloc[prints.index(max(prints, key=prints.count))]
    fingerprints, deviations, partials, texts = [], [], [], []
    for row in frame.itertuples():
        texts.append(config_text(*configs[row.run_id]) if row.run_id in configs else "")
        if row.run_id not in configs:
            fingerprints.append(columns_fingerprint({k: getattr(row, k) for k in RECORDED}))
            deviations.append("")
            partials.append(False)
            continue
        keys, choices = configs[row.run_id]
        keys = with_new_defaults(keys, choices)
        choices, trainer = _reference_trainer(choices, row.device_kind)
        if row.preset and row.preset == row.recipe:
            reference = preset(row.preset, trainer)
        elif row.recipe == row.model and not row.preset:
            reference = model_default(row.model, trainer)
        else:
            reference = None
        if reference is None:  # a recipe of compare's own naming: its most common configuration
            other_keys, other_choices = configs[majority[(row.recipe, row.device_kind)]]
            other_choices = _reference_trainer(other_choices, row.device_kind)[0]
            groups = [g for g in GROUPS if choices.get(g) and other_choices.get(g) and choices[g] != other_choices[g]]
            dev = [f"{g}={choices[g]}" for g in groups] + [f"{k}={keys.get(k, '(unset)')}" for k in sorted(set(keys) | set(other_keys))
                                                            if keys.get(k) != other_keys.get(k) and k.split(".")[0] not in groups]
            partials.append(is_partial(keys, None))
        else:
            dev = deviation(keys, choices, reference)
            partials.append(is_partial(keys, reference))
        fingerprints.append(fingerprint(keys))
        deviations.append(", ".join(dev))
    return frame.assign(fingerprint=fingerprints, deviation=deviations, partial=partials, config=texts)


def with_new_defaults(keys: dict[str, str], choices: dict[str, str]) -> dict[str, str]:
    """The run's keys over today's composition of its group choices: keys added since it ran get their default."""
    today = composed([f"{g}={c}" for g, c in sorted(choices.items())])
    return {**today[0], **keys} if today is not None else keys


def identify_recorded(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows carried from a runs.csv written before fingerprints: a preset's row whose recorded model,
    choices, epochs and batch size are the preset's gets the preset's fingerprint (those runs were made
    as `compare experiment=<recipe>`, results/README.md says how); any other row a fingerprint of what
    it recorded. Rows that kept their config (`config`: training keys and group choices) are regrouped
    by today's rules."""
    frame = frame.copy()
    configs = {r: c for r, text in zip(frame["run_id"], frame["config"]) if text and (c := config_of_text(text)) is not None}
    if configs:  # regrouped as when they were in a store: today's rules, today's presets
        known = frame["run_id"].isin(configs)
        redone = identify(frame[known].assign(preset=[configs[r][1].get("experiment", "") for r in frame.loc[known, "run_id"]]), configs)
        frame.loc[known, ["fingerprint", "deviation", "partial", "config"]] = redone[["fingerprint", "deviation", "partial", "config"]].values
    missing = frame["fingerprint"].isna() | (frame["fingerprint"] == "")
    for index, row in frame[missing].iterrows():
        kind = device_kind(row["device"])
        frame.loc[index, "device_kind"] = kind
        overrides = preset(str(row["recipe"]), "cpu" if kind == "cpu" else "gpu")
        reference = composed(overrides) if overrides else None
        recorded = {"model.name": str(row["model"]), "trainer.max_epochs": str(int(row["epochs"])), "data.batch_size": str(int(row["batch_size"]))}
        chosen = {"optimizer": row["optimizer"], "aug": row["aug"], "schedule": row["schedule"]}
        if reference is not None and all(reference[0].get(k) == v for k, v in recorded.items()) and \
                all(reference[1].get(k) == v for k, v in chosen.items()):
            frame.loc[index, ["fingerprint", "config"]] = [fingerprint(reference[0]), config_text(*reference)]  # regrouped as a run from now on
        else:
            frame.loc[index, "fingerprint"] = columns_fingerprint({k: row[k] for k in RECORDED})
        frame.loc[index, ["deviation", "partial"]] = ["", False]
    return frame


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

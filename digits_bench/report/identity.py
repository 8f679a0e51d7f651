"""A leaderboard row's identity: which runs are "the same configuration on the same kind of device", and how a
run differs from the reference it is compared with.

A row pools the seeds of one fingerprint (`config/fingerprint.py`) on one device kind. A run's deviation
says, in override syntax, how it differs from its preset (`compile=true`, `data.subset=2000`), so a row
that is not the preset never passes for it; a partial run (a data subset, fewer epochs) is marked. Runs
read from a store, carried from an earlier report's runs.csv, or brought in from another machine
(`report/add_runs.py`) are identified here alike.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Mapping

import pandas as pd

from digits_bench.config.fingerprint import GROUPS, columns_fingerprint, fingerprint, training_keys

# What a run recorded in runs.csv before fingerprints: a carried row without one is fingerprinted from these.
RECORDED = ["recipe", "model", "optimizer", "aug", "schedule", "epochs", "batch_size"]


def device_kind(device: str) -> str:
    """`cpu` for any CPU, else the GPU's model name as torch reports it (`NVIDIA H100 80GB HBM3`)."""
    device = str(device or "?").strip()
    return "cpu" if device.lower().startswith("cpu") else device


@lru_cache(maxsize=64)
def _composed(overrides: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]] | None:
    from hydra.core.hydra_config import HydraConfig

    from digits_bench.config import compose_config
    from digits_bench.errors import ConfigError

    saved = HydraConfig.instance().cfg  # a caller mid-run keeps its own Hydra state
    try:
        cfg = compose_config(list(overrides))
        choices = {k: str(v) for k, v in HydraConfig.get().runtime.choices.items() if not k.startswith("hydra") and v is not None}
    except ConfigError:
        return None
    finally:
        HydraConfig.instance().cfg = saved
    return training_keys(cfg), choices


def preset(recipe: str, trainer: str | None = None) -> list[str] | None:
    """The overrides of `experiment=<recipe>` with the run's trainer option, or None when the recipe is no
    preset. The preset composed today is the robust reference: a run's deviation from it does not depend
    on which other runs happen to be in the store, and a run made before its preset changed says how."""
    from digits_bench.config import CONF_DIR

    if not (CONF_DIR / "experiment" / f"{recipe}.yaml").is_file():
        return None
    return [f"experiment={recipe}"] + ([f"trainer={trainer}"] if trainer else [])


def model_default(model: str, trainer: str | None = None) -> list[str]:
    """The reference of a run made without a preset: the defaults with its model."""
    return [f"model={model}"] + ([f"trainer={trainer}"] if trainer else [])


def composed(overrides: list[str]) -> tuple[dict[str, str], dict[str, str]] | None:
    """(training keys, group choices) of a freshly composed config; None when it does not compose."""
    return _composed(tuple(overrides))


def deviation(run: Mapping[str, str], choices: Mapping[str, str], base_overrides: list[str]) -> list[str]:
    """How `run` (training keys, group choices) differs from the config `base_overrides` compose to, in
    override syntax: a swapped group as `group=option`, then every key that differs from base with
    those groups swapped (`trainer=ddp, trainer.devices=1`)."""
    base = composed(base_overrides)
    if base is None:
        return []
    groups = [g for g in GROUPS if choices.get(g) and base[1].get(g) and choices[g] != base[1][g]]
    if groups:
        swapped = composed([*base_overrides, *(f"{g}={choices[g]}" for g in groups)])
        base = swapped if swapped is not None else base
    out = [f"{g}={choices[g]}" for g in groups]
    out += [f"{k}={run.get(k, '(unset)')}" for k in sorted(set(run) | set(base[0])) if run.get(k) != base[0].get(k)]
    return out


def is_partial(run: Mapping[str, str], base_overrides: list[str] | None) -> bool:
    """Trained on a data subset, scored on a test subset, or for fewer epochs than its reference."""
    if run.get("data.subset", "null") != "null" or run.get("data.test_subset", "null") != "null":
        return True
    found = composed(base_overrides) if base_overrides else None
    if found is None:
        return False
    base = found[0]
    try:
        return int(run.get("trainer.max_epochs", 0)) < int(base.get("trainer.max_epochs", 0))
    except ValueError:
        return False


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


def reference_trainer(choices: dict[str, str], kind: str) -> tuple[dict[str, str], str]:
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
        choices, trainer = reference_trainer(choices, row.device_kind)
        if row.preset and row.preset == row.recipe:
            reference = preset(row.preset, trainer)
        elif row.recipe == row.model and not row.preset:
            reference = model_default(row.model, trainer)
        else:
            reference = None
        if reference is None:  # a recipe of compare's own naming: its most common configuration
            other_keys, other_choices = configs[majority[(row.recipe, row.device_kind)]]
            other_choices = reference_trainer(other_choices, row.device_kind)[0]
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



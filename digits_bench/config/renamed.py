"""Class paths that were renamed after runs recorded them in their config.yaml and fingerprint.

A stored config (resume, predict) is read with today's names; a fingerprint hashes the names a
configuration was first recorded under, so it keeps its fingerprint, and its leaderboard row, across
a rename. One table, oldest name first.
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


def recorded_target(target: str) -> str:
    """The name a target is fingerprinted under."""
    return RECORDED_AS.get(target, target)


def with_current_targets(cfg: DictConfig) -> DictConfig:
    """A stored (resolved) config whose renamed `_target_`s name today's classes."""

    def current(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: RENAMED_TARGETS.get(v, v) if k == "_target_" and isinstance(v, str) else current(v) for k, v in node.items()}
        return [current(v) for v in node] if isinstance(node, list) else node

    return OmegaConf.create(current(OmegaConf.to_container(cfg, resolve=False)))

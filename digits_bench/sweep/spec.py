"""Sweep files (sweeps/*.yaml): what to search, how, and for how long."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml

from ..errors import ConfigError

SWEEPS_DIR = Path(__file__).resolve().parents[2] / "sweeps"
KINDS = ("float", "int", "categorical")


@dataclass(frozen=True)
class Param:
    """One searched config key: a value key (`optimizer.lr`) or a config group (`schedule`)."""

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return trial.suggest_categorical(self.key, list(self.choices))


@dataclass(frozen=True)
class SweepSpec:
    name: str
    base: tuple[str, ...]
    space: tuple[Param, ...]
    n_trials: int
    metric: str = "val/acc"
    direction: str = "maximize"
    sampler: dict[str, Any] = field(default_factory=lambda: {"type": "tpe", "seed": 0})
    pruner: dict[str, Any] = field(default_factory=lambda: {"type": "median"})
    balance: str | None = None  # a categorical key every choice of which gets an equal share of trials
    enqueue: tuple[dict[str, Any], ...] = ()
    heartbeat: dict[str, int] = field(default_factory=lambda: {"interval": 10, "grace": 30})
    path: Path | None = None

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """Hydra overrides for one trial: the base, then each sampled value (`key=value`)."""
        return [*self.base, *(f"{key}={_hydra_value(value)}" for key, value in params.items())]


def _hydra_value(value: Any) -> str:
    if isinstance(value, str):
        return value if value.replace("_", "").replace(".", "").isalnum() else f"'{value}'"
    if isinstance(value, float):
        return repr(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _param(key: str, raw: dict[str, Any]) -> Param:
    kind = raw.get("type")
    if kind not in KINDS:
        raise ConfigError(f"sweep space '{key}': type must be one of {', '.join(KINDS)} (got {kind!r})")
    if kind == "categorical":
        if not raw.get("choices"):
            raise ConfigError(f"sweep space '{key}': categorical needs a non-empty 'choices' list")
        return Param(key, kind, choices=tuple(raw["choices"]))
    low, high = raw.get("low"), raw.get("high")
    if low is None or high is None or not float(low) < float(high):
        raise ConfigError(f"sweep space '{key}': needs low < high (got low={low}, high={high})")
    if raw.get("log") and float(low) <= 0:
        raise ConfigError(f"sweep space '{key}': a log range needs low > 0 (got {low})")
    return Param(key, kind, float(low), float(high), bool(raw.get("log", False)), raw.get("step"))


def find_sweep(name_or_path: str) -> Path:
    path = Path(name_or_path)
    for candidate in (path, SWEEPS_DIR / name_or_path, SWEEPS_DIR / f"{name_or_path}.yaml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml")))
    raise ConfigError(f"no sweep named {name_or_path!r}; choose one of: {known} (or give a path to a YAML file)")


def load_sweep(name_or_path: str, **changes: Any) -> SweepSpec:
    """Read and check a sweep file; `changes` (n_trials=…, name=…) override its top-level keys."""
    path = find_sweep(name_or_path)
    raw = yaml.safe_load(path.read_text()) or {}
    raw.update({k: v for k, v in changes.items() if v is not None})
    unknown = set(raw) - {"name", "base", "space", "n_trials", "metric", "direction", "sampler", "pruner", "balance", "enqueue", "heartbeat"}
    if unknown:
        raise ConfigError(f"sweep {path.name}: unknown keys {sorted(unknown)}")
    if not raw.get("space"):
        raise ConfigError(f"sweep {path.name}: 'space' must declare at least one key to search")
    n_trials = raw.get("n_trials")
    if not isinstance(n_trials, int) or n_trials < 1:
        raise ConfigError(f"sweep {path.name}: n_trials must be an integer >= 1 (got {n_trials!r})")
    if raw.get("direction", "maximize") not in ("maximize", "minimize"):
        raise ConfigError(f"sweep {path.name}: direction must be maximize or minimize")
    space = tuple(_param(key, value) for key, value in raw["space"].items())
    balance = raw.get("balance")
    if balance is not None and not any(p.key == balance and p.kind == "categorical" for p in space):
        raise ConfigError(f"sweep {path.name}: balance '{balance}' must be a categorical key of the space")
    return SweepSpec(
        name=str(raw.get("name", path.stem)),
        base=tuple(raw.get("base", [])),
        space=space,
        n_trials=n_trials,
        metric=raw.get("metric", "val/acc"),
        direction=raw.get("direction", "maximize"),
        sampler=dict(raw.get("sampler", {"type": "tpe", "seed": 0})),
        pruner=dict(raw.get("pruner", {"type": "median"})),
        balance=balance,
        enqueue=tuple(raw.get("enqueue", [])),
        heartbeat={"interval": 10, "grace": 30, **raw.get("heartbeat", {})},
        path=path,
    )

"""Sweep files (sweeps/*.yaml): what to search, how, and for how long."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import optuna
import yaml

from digits_bench import packaged
from digits_bench.errors import ConfigError
from digits_bench.names import Metric

SWEEPS_DIR = packaged.folder("sweeps")
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
    metric: str = Metric.VAL_ACC
    direction: str = "maximize"
    sampler: dict[str, Any] = field(default_factory=lambda: {"type": "tpe", "seed": 0})
    pruner: dict[str, Any] = field(default_factory=lambda: {"type": "median"})
    balance: str | None = None  # a categorical key every choice of which gets an equal share of trials
    enqueue: tuple[dict[str, Any], ...] = ()
    heartbeat: dict[str, int] = field(default_factory=lambda: {"interval": 10, "grace": 30})
    path: Path | None = None

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """Hydra overrides for one trial: the base, then each sampled value (`key=value`)."""
        return [*self.base, *(f"{key}={hydra_value(value)}" for key, value in params.items())]


def hydra_value(value: Any) -> str:
    if isinstance(value, str):
        return value if value.replace("_", "").replace(".", "").isalnum() else f"'{value}'"
    if isinstance(value, float):
        return repr(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _number(text: str) -> float | None:
    """What a text YAML did not read as a number would be as one (`1.0e5`), or None."""
    try:
        return float(text)
    except ValueError:
        return None


def _param(key: str, raw: dict[str, Any]) -> Param:
    kind = raw.get("type")
    if kind not in KINDS:
        raise ConfigError(f"sweep space '{key}': type must be one of {', '.join(KINDS)} (got {kind!r})")
    if kind == "categorical":
        if not isinstance(raw.get("choices"), list) or not raw["choices"]:
            raise ConfigError(f"sweep space '{key}': categorical needs a non-empty 'choices' list")
        return Param(key, kind, choices=tuple(raw["choices"]))
    low, high, step = raw.get("low"), raw.get("high"), raw.get("step")
    for name, value in (("low", low), ("high", high), ("step", step)):
        if isinstance(value, str) and _number(value) is not None:  # YAML 1.1 reads 1e-3 and 1.0e5 as text
            raise ConfigError(f"sweep space '{key}': {name}: YAML reads {value} as text (an exponent needs a dot and a "
                              f"sign, 1.0e+5); write {_number(value)!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or not low < high:
        raise ConfigError(f"sweep space '{key}': needs numbers low < high (got low={low!r}, high={high!r})")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0):
        raise ConfigError(f"sweep space '{key}': step must be a number > 0 (got {step!r})")
    if raw.get("log") and low <= 0:
        raise ConfigError(f"sweep space '{key}': a log range needs low > 0 (got {low})")
    return Param(key, kind, float(low), float(high), bool(raw.get("log", False)), step)


def find_sweep(name_or_path: str) -> Path:
    path = Path(name_or_path)
    for candidate in (path, SWEEPS_DIR / name_or_path, SWEEPS_DIR / f"{name_or_path}.yaml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml")))
    raise ConfigError(f"no sweep named {name_or_path!r}; choose one of: {known} (or give a path to a YAML file)")


def make_sampler(spec: SweepSpec, offset: int = 0) -> optuna.samplers.BaseSampler:
    """`offset` shifts the seed per worker and per restart, so parallel or resumed workers do not replay one stream."""
    options = dict(spec.sampler)
    kind = options.pop("type", "tpe")
    if options.get("seed") is not None:
        options["seed"] = int(options["seed"]) + offset
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
    if kind not in samplers:
        raise ValueError(f"sampler.type must be one of {', '.join(samplers)} (got {kind!r})")
    return samplers[kind](**options)


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    options = dict(spec.pruner)
    kind = options.pop("type", "median")
    if kind == "median":
        return optuna.pruners.MedianPruner(**{"n_startup_trials": 2, "n_warmup_steps": 0, **options})
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(**{"min_resource": 1, **options})
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"pruner.type must be median, hyperband or none (got {kind!r})")


FILE_KEYS = ("name", "base", "space", "n_trials", "metric", "direction", "sampler", "pruner", "balance", "enqueue", "heartbeat")


def read_sweep_file(path: Path) -> dict[str, Any]:
    """The file as a mapping; broken YAML or another shape is one line naming the file and the problem."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"sweep {path}: not valid YAML ({problem}{where})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"sweep {path}: cannot be read ({err})") from None
    if raw is None:
        raise ConfigError(f"sweep {path}: the file is empty; see sweeps/mlp.yaml for the keys a sweep declares")
    if not isinstance(raw, dict):
        raise ConfigError(f"sweep {path}: must be a mapping of {', '.join(FILE_KEYS[:4])}, ... (got a {type(raw).__name__}); "
                          "see sweeps/mlp.yaml")
    return raw


def _check_shapes(raw: dict[str, Any], where: str) -> None:
    """Each top-level key has the shape the runner expects, so nothing fails later with a TypeError."""
    mappings = ("space", "sampler", "pruner", "heartbeat")
    for key in mappings:
        if key in raw and not isinstance(raw[key], dict):
            raise ConfigError(f"{where}: '{key}' must be a mapping (got {raw[key]!r})")
    for key, value in raw.get("space", {}).items():
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: space '{key}' must be a mapping like {{type: float, low: 0.001, high: 0.1}} (got {value!r})")
    base = raw.get("base", [])
    if not isinstance(base, list) or not all(isinstance(o, str) for o in base):
        raise ConfigError(f"{where}: 'base' must be a list of overrides like [model=lenet, trainer.max_epochs=5] (got {base!r})")
    enqueue = raw.get("enqueue", [])
    if not isinstance(enqueue, list) or not all(isinstance(e, dict) for e in enqueue):
        raise ConfigError(f"{where}: 'enqueue' must be a list of mappings from space keys to values (got {enqueue!r})")
    for params in enqueue:
        unknown = set(params) - set(raw.get("space", {}))
        if unknown:
            raise ConfigError(f"{where}: enqueue names keys outside the space: {sorted(unknown)}")


def load_sweep(name_or_path: str, overrides: Sequence[str] = (), **changes: Any) -> SweepSpec:
    """Read and check a sweep file.

    `overrides` (Hydra `key=value`, from the command line) join the file's `base`, so they apply to
    every trial; `changes` (n_trials=…, name=…) override its top-level keys.
    """
    path = find_sweep(name_or_path)
    raw = read_sweep_file(path)
    raw.update({k: v for k, v in changes.items() if v is not None})
    unknown = set(raw) - set(FILE_KEYS)
    if unknown:
        raise ConfigError(f"sweep {path.name}: unknown keys {sorted(unknown)}; a sweep declares {', '.join(FILE_KEYS)}")
    _check_shapes(raw, f"sweep {path.name}")
    if not raw.get("space"):
        raise ConfigError(f"sweep {path.name}: 'space' must declare at least one key to search")
    n_trials = raw.get("n_trials")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ConfigError(f"sweep {path.name}: n_trials must be an integer >= 1 (got {n_trials!r})")
    if raw.get("direction", "maximize") not in ("maximize", "minimize"):
        raise ConfigError(f"sweep {path.name}: direction must be maximize or minimize")
    space = tuple(_param(str(key), value) for key, value in raw["space"].items())
    searched = {p.key for p in space}
    overridden = sorted(searched & {o.split("=", 1)[0].lstrip("+~") for o in overrides})
    if overridden:
        raise ConfigError(f"sweep {path.name} searches {', '.join(overridden)}; drop that override "
                          "(or copy the file and fix the key in its base)")
    balance = raw.get("balance")
    if balance is not None and not any(p.key == balance and p.kind == "categorical" for p in space):
        raise ConfigError(f"sweep {path.name}: balance '{balance}' must be a categorical key of the space")
    spec = SweepSpec(
        name=str(raw.get("name", path.stem)),
        base=(*raw.get("base", []), *overrides),
        space=space,
        n_trials=n_trials,
        metric=str(raw.get("metric", Metric.VAL_ACC)),
        direction=raw.get("direction", "maximize"),
        sampler=dict(raw.get("sampler", {"type": "tpe", "seed": 0})),
        pruner=dict(raw.get("pruner", {"type": "median"})),
        balance=balance,
        enqueue=tuple(raw.get("enqueue", [])),
        heartbeat={"interval": 10, "grace": 30, **raw.get("heartbeat", {})},
        path=path,
    )
    try:  # unknown types or options fail here, not when the study is opened
        make_sampler(spec), make_pruner(spec)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in spec.heartbeat.values()):
            raise ValueError(f"heartbeat interval and grace must be whole seconds > 0 (got {spec.heartbeat})")
    except (TypeError, ValueError) as err:
        raise ConfigError(f"sweep {path.name}: {err}") from None
    return spec

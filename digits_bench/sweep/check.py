"""A sweep checked against the config its trials will compose, before any trial or MLflow run exists.

Without this, a typo in a space key (`optimizer.lrr`) or a bad command-line override
fails every trial one by one, minutes later. Here each is one line, up front.
"""
from __future__ import annotations

import copy
from typing import Any, Iterator

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from digits_bench.config import compose_config, validate
from digits_bench.errors import ConfigError, nearest
from digits_bench.sweep.spec import Param, SweepSpec, hydra_value

_ABSENT = object()


def config_groups() -> set[str]:
    """Config groups of the config composed last (model, optimizer, schedule, ...)."""
    return {k for k in HydraConfig.get().runtime.choices if not k.startswith("hydra")}


def leaf_keys(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaf_keys(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip(".")


def candidates(param: Param) -> list[Any]:
    """The values a trial may set: both ends of a range, or every choice."""
    if param.kind == "categorical":
        return list(param.choices)
    if param.kind == "int":
        return [int(param.low), int(param.high)]  # type: ignore[arg-type]
    return [param.low, param.high]


def _compose(spec: SweepSpec, extra: list[str], what: str) -> DictConfig:
    try:
        return compose_config([*spec.base, *extra])
    except ConfigError as err:
        raise ConfigError(f"sweep {spec.name}: {what}{err}") from None


def check_sweep(spec: SweepSpec) -> None:
    """Compose the base (with the command line) and every option of each searched group, then check that
    every searched value key exists in each and that every value it may take passes `validate`."""
    base = _compose(spec, [], "")
    groups = config_groups()
    try:
        validate(base)
    except ConfigError as err:
        raise ConfigError(f"sweep {spec.name}: {err}") from None
    group_params = [p for p in spec.space if p.key in groups]
    for param in spec.space:
        if param.key in groups and param.kind != "categorical":
            raise ConfigError(f"sweep {spec.name}: space '{param.key}' is a config group: it needs type categorical")
        if param.key not in groups and isinstance(OmegaConf.select(base, param.key), DictConfig):
            raise ConfigError(f"sweep {spec.name}: space '{param.key}' is a config section; search one of its values "
                              f"or a config group ({', '.join(sorted(groups))})")
    # every trial sets each searched group, so its values are checked under each option (not the base's own)
    variants: list[tuple[str, DictConfig]] = [] if group_params else [("", base)]
    for param in group_params:
        for choice in param.choices:
            override = f"{param.key}={hydra_value(choice)}"
            variants.append((f" with {override}", _compose(spec, [override], f"with {override}: ")))
    for param in spec.space:
        if param.key in groups:
            continue
        for where, cfg in variants:
            _check_value_key(spec, param, cfg, where)


def _check_value_key(spec: SweepSpec, param: Param, cfg: DictConfig, where: str) -> None:
    if OmegaConf.select(cfg, param.key, default=_ABSENT) is _ABSENT:
        keys = list(leaf_keys(OmegaConf.to_container(cfg, resolve=False)))
        close = nearest(param.key, keys)
        hint = f"; did you mean '{close}'?" if close else ""
        raise ConfigError(f"sweep {spec.name}: space key '{param.key}' is not in the composed config{where}{hint}")
    for value in candidates(param):
        trial_cfg = copy.deepcopy(cfg)
        OmegaConf.update(trial_cfg, param.key, value, merge=False)
        try:
            validate(trial_cfg)
        except ConfigError as err:
            raise ConfigError(f"sweep {spec.name}: space '{param.key}' may take {value!r}{where}, which fails: {err}") from None

"""A config read back from a store or a file (`resume=`, predict, ensembles) is data: it builds only what this
harness's own configs build.

Hydra instantiates whatever a `_target_` names, with the arguments beside it: a config.yaml an attacker
could write to (a shared store, an artifact replaced on a server) would run their code on the next resume
or predict. So a stored config may name only the targets in conf/ (this package's models, data module,
schedules, augmentation; the torch optimizers and Lightning's Trainer that conf/ uses), renamed ones under
today's names, and any class of `torch.optim` or `torch.nn`. Everything else is refused in one line naming
the key. Stored configs are resolved when written, so an interpolation (`${oc.env:SECRET}`) is refused too.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from digits_bench.config import CONF_DIR
from digits_bench.config.renamed import with_current_targets
from digits_bench.config.validation import leaves
from digits_bench.errors import ConfigError

CLASS_MODULES = ("torch.optim", "torch.nn")  # a class directly in one of these: `torch.optim.SGD`, `torch.nn.ReLU`
TARGET_LINE = re.compile(r"^\s*_target_:\s*([\w.]+)\s*$", re.M)


@lru_cache(maxsize=1)
def conf_targets() -> frozenset[str]:
    """Every `_target_` that conf/ names: what the harness itself builds (extensions added there included)."""
    return frozenset(match for path in CONF_DIR.rglob("*.yaml") for match in TARGET_LINE.findall(path.read_text()))


def allowed_target(target: str) -> bool:
    module, _, name = target.rpartition(".")
    return target in conf_targets() or (module in CLASS_MODULES and name[:1].isupper() and name.isidentifier())


def check_stored(cfg: DictConfig, source: str) -> DictConfig:
    """Refuse a stored config that would build anything but the allowed targets; returns it otherwise."""
    for key, value in leaves(OmegaConf.to_container(cfg, resolve=False), skipped=()):
        if key.rpartition(".")[2] == "_target_" and not (isinstance(value, str) and allowed_target(value)):
            raise ConfigError(f"{source}: {key}={value} is not something this harness builds; refused "
                              "(a stored config may name only conf/'s targets and torch.optim / torch.nn classes)")
        if isinstance(value, str) and "${" in value:
            raise ConfigError(f"{source}: {key} holds an interpolation ({value[:80]}); stored configs are resolved, refused")
    return cfg


def read_stored(path: Path | str, source: str) -> DictConfig:
    """A config.yaml from a store or a file, with today's names for renamed targets, checked by `check_stored`."""
    try:
        loaded = OmegaConf.load(path)
    except Exception as err:  # yaml's and OmegaConf's many error types: all mean "not a config"
        raise ConfigError(f"{source} is not a readable config ({type(err).__name__})") from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{source} is not a digits_bench run config (a list, not a mapping)")
    return check_stored(with_current_targets(loaded), source)


def check_stored_overrides(overrides: list[str], source: str) -> list[str]:
    """Overrides read back from a store (a study's base and best trial): they may set values, never a target."""
    for override in overrides:
        key = override.partition("=")[0].lstrip("+~")
        if key.rpartition(".")[2] == "_target_" or key.startswith("hydra"):
            raise ConfigError(f"{source}: the override {override[:120]} sets {key}; refused (stored overrides set values only)")
    return overrides

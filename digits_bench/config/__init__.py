"""Composing and checking configs: the one way the CLI, sweeps, benchmark and tests get a config."""
from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path
from typing import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict

from digits_bench import packaged
from digits_bench.errors import ConfigError, fitted, nearest

CONF_DIR = packaged.folder("conf")


@functools.lru_cache(maxsize=None)
def private_temp_dir(purpose: str) -> str:
    """`${private_tmp:multirun}`: a folder of this process's own in $TMPDIR (mkdtemp: a fresh name, mode 0700).
    A predictable path in a shared temp folder is one another user can plant a symlink at."""
    return tempfile.mkdtemp(prefix=f"digits_bench-{purpose}-")


OmegaConf.register_new_resolver("private_tmp", private_temp_dir, replace=True)  # conf/config.yaml's hydra.sweep.dir


def data_home() -> str:
    """`${data_home:}`, where the datasets go unless DIGITS_BENCH_DATA says: `data/` where you run in a checkout (make
    runs from its top); installed from a wheel, one folder per user ($XDG_DATA_HOME/digits_bench, else
    ~/.local/share/digits_bench), whichever folder you run from."""
    if packaged.in_checkout():
        return "data"
    import os

    return str(Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "digits_bench")


OmegaConf.register_new_resolver("data_home", data_home, replace=True)  # conf/paths/default.yaml's data_dir


def compose_config(overrides: Sequence[str] = (), config_name: str = "config", keep_hydra: bool = False) -> DictConfig:
    """Compose exactly as `python -m digits_bench <overrides>` would, without running anything.

    Hydra's runtime info (the chosen option of each group) is kept in HydraConfig,
    as under the CLI, and removed from the returned config unless `keep_hydra` (the launcher's settings, resolved
    against the rest: digits_bench.launcher).
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="digits_bench"):
        try:
            cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
        except HydraException as err:
            raise ConfigError(explain(str(err), list(overrides))) from None
    HydraConfig.instance().set_config(cfg)
    if not keep_hydra:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


def _one_line(message: str) -> str:
    """Hydra's composition errors span lines (options, search path); a user needs the first part on one line."""
    message = message.split("Config search path")[0]
    return " ".join(" ".join(line.split()) for line in message.splitlines() if line.strip())


def _nearest(word: str, candidates: Sequence[str]) -> str:
    close = nearest(word, candidates)
    return f"did you mean {close}? " if close else ""


def explain(message: str, overrides: Sequence[str]) -> str:
    """Hydra's error for an unknown option or key, as one line that names the nearest right one."""
    typed = {o.partition("=")[0].lstrip("+~"): o for o in overrides}
    if found := re.search(r"Could not find '([\w/]+)/([^']+)'", message):
        group, option = found.groups()
        options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        if not options:
            return _one_line(message)
        nearest = _nearest(option, options).replace("mean ", f"mean {group}=")
        return fitted(f"{group}={option}: no such option; {nearest}options: ", options)
    if found := re.search(r"Could not override '([\w.]+)'", message):
        key = found.group(1)
        parent, _, leaf = key.rpartition(".")
        found = _default_node(parent, overrides)
        if found is None:
            return _one_line(message)
        node, choices = found
        groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra"} if not parent else set()
        keys = sorted({str(k) for k in node} | groups)
        group = parent.partition(".")[0]
        where = f"{parent} ({group}={choices[group]})" if group in choices else parent or "the config"
        listed = [k for k in keys if not k.startswith("_")]
        return fitted(f"{typed.get(key, key)}: {where} has no key {leaf}; {_nearest(leaf, keys)}keys: ", listed)
    return _one_line(message)


def _default_node(path: str, overrides: Sequence[str]) -> tuple[DictConfig, dict[str, str]] | None:
    """The config node at `path` as composed from the group options typed (and no other overrides), and the
    option of each group it was composed with."""
    groups = [o for o in overrides if "=" in o and "." not in o.partition("=")[0] and not o.startswith(("+", "~"))
              and (CONF_DIR / o.partition("=")[0]).is_dir()]
    try:
        cfg = compose_config(groups)
    except ConfigError:
        return None
    node = OmegaConf.select(cfg, path) if path else cfg
    return (node, group_choices()) if isinstance(node, DictConfig) else None


def group_choices() -> dict[str, str]:
    """Which option of each config group this run uses (model=vgg_bn, aug=on, ...), when Hydra composed it."""
    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {k: str(v) for k, v in choices.items() if not k.startswith("hydra") and v is not None}


def typed_overrides() -> list[str]:
    """The overrides the user typed (CLI) or passed to compose_config, from Hydra's record of them."""
    if not HydraConfig.initialized():
        return []
    return [str(o) for o in HydraConfig.get().overrides.task]


def validate(cfg: DictConfig) -> None:
    """Reject values that cannot train, before any data is read or any MLflow run exists (rules: validation.py);
    keys added with `+` only where what the config builds takes them."""
    from digits_bench.config.validation import check_added_keys, check_config

    check_config(cfg)
    if not cfg.get("resume"):  # a resumed run's config is its stored one, not the one typed
        check_added_keys(cfg, [o for o in typed_overrides() if o.startswith("+")])

"""Composing and checking configs: the one way the CLI, sweeps, benchmark and tests get a config."""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict

from digits_bench.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


@functools.lru_cache(maxsize=None)
def private_temp_dir(purpose: str) -> str:
    """`${private_tmp:multirun}`: a folder of this process's own in $TMPDIR (mkdtemp: a fresh name, mode 0700).
    A predictable path in a shared temp folder is one another user can plant a symlink at."""
    return tempfile.mkdtemp(prefix=f"digits_bench-{purpose}-")


OmegaConf.register_new_resolver("private_tmp", private_temp_dir, replace=True)  # conf/config.yaml's hydra.sweep.dir


def compose_config(overrides: Sequence[str] = (), config_name: str = "config") -> DictConfig:
    """Compose exactly as `python -m digits_bench <overrides>` would, without running anything.

    Hydra's runtime info (the chosen option of each group) is kept in HydraConfig,
    as under the CLI, and removed from the returned config.
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="digits_bench"):
        try:
            cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
        except HydraException as err:
            raise ConfigError(_one_line(str(err))) from None
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def _one_line(message: str) -> str:
    """Hydra's composition errors span lines (options, search path); a user needs the first part on one line."""
    message = message.split("Config search path")[0]
    return " ".join(" ".join(line.split()) for line in message.splitlines() if line.strip())


def group_choices() -> dict[str, str]:
    """Which option of each config group this run uses (model=vgg_bn, aug=on, ...), when Hydra composed it."""
    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {k: str(v) for k, v in choices.items() if not k.startswith("hydra") and v is not None}


def validate(cfg: DictConfig) -> None:
    """Reject values that cannot train, before any data is read or any MLflow run exists (rules: validation.py)."""
    from digits_bench.config.validation import check_config

    check_config(cfg)

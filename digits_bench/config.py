"""Composing and checking configs: the one way the CLI, sweeps, benchmark and tests get a config."""
from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict

from .errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
TRAIN_POOL = 60_000


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


def _number(cfg: DictConfig, key: str, kind: type = numbers.Real) -> Any:
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if kind is numbers.Integral else "a number"
        raise ConfigError(f"{key} must be {what} (got {value!r})")
    return value


def validate(cfg: DictConfig) -> None:
    """Reject values that cannot train, before any data is read or any MLflow run exists."""
    if _number(cfg, "optimizer.lr") <= 0:
        raise ConfigError(f"optimizer.lr must be > 0 (got {cfg.optimizer.lr}); try optimizer.lr=0.01")
    if _number(cfg, "optimizer.weight_decay") < 0:
        raise ConfigError(f"optimizer.weight_decay must be >= 0 (got {cfg.optimizer.weight_decay})")
    if _number(cfg, "data.batch_size", numbers.Integral) < 1:
        raise ConfigError(f"data.batch_size must be >= 1 (got {cfg.data.batch_size})")
    if _number(cfg, "trainer.max_epochs", numbers.Integral) < 1:
        raise ConfigError(f"trainer.max_epochs must be >= 1 (got {cfg.trainer.max_epochs})")
    val_size = _number(cfg, "data.val_size", numbers.Integral)
    if not 1 <= val_size <= TRAIN_POOL - 1:
        raise ConfigError(f"data.val_size must be between 1 and {TRAIN_POOL - 1} (got {val_size})")
    for key, limit in (("data.subset", TRAIN_POOL - val_size), ("data.test_subset", 10_000)):
        if OmegaConf.select(cfg, key) is not None and not 1 <= _number(cfg, key, numbers.Integral) <= limit:
            raise ConfigError(f"{key} must be between 1 and {limit} (got {OmegaConf.select(cfg, key)}), or null for all")
    if cfg.get("cuda_graphs") not in (None, True, False):
        raise ConfigError(f"cuda_graphs must be true, false or null (null: wherever they apply), got {cfg.cuda_graphs!r}")
    accelerator = cfg.trainer.accelerator
    if accelerator not in ACCELERATORS:
        raise ConfigError(f"trainer.accelerator must be one of {', '.join(ACCELERATORS)} (got {accelerator!r})")
    if accelerator in ("gpu", "cuda") and not _cuda_available():
        raise ConfigError(f"trainer.accelerator={accelerator} but no CUDA GPU is visible; use trainer=cpu or trainer.accelerator=auto")


def _cuda_available() -> bool:
    import torch  # only when a GPU is asked for: keeps the bad-input path fast

    return torch.cuda.is_available()

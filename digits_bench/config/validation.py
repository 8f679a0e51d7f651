"""Every config value checked before any data is read or any MLflow run exists.

One table of rules covers the numeric (and a few named) leaves of the composed config:
type, range, finiteness. A few checks relate keys to each other (schedule lengths,
subset vs. validation split) or ask the machine (accelerators). Import-light on purpose:
the CLI fails on bad input in a second, before torch or Lightning is imported.
"""
from __future__ import annotations

import fnmatch
import importlib.util
import math
from dataclasses import dataclass
from typing import Any, Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from digits_bench.errors import ConfigError, fitted, nearest

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
MODEL_INITS = ("torch", "glorot_uniform", "uniform")  # digits_bench.models.init implements them
# Lightning's precision names (lightning.fabric.plugins.precision.precision._PRECISION_INPUT*), and their aliases
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true", "transformer-engine",
              "transformer-engine-float16")  # the usual first: a refusal lists as many as fit its line
PRECISION_ALIASES = ("64", "32", "16", "bf16", 64, 32, 16)
SEED_MAX = 2**32 - 1  # numpy's seed range, which seed_everything uses
STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook", "fsdp", "deepspeed", "ddp_find_unused_parameters_false",
              "ddp_find_unused_parameters_true", "ddp_spawn_find_unused_parameters_false",
              "ddp_spawn_find_unused_parameters_true", "ddp_fork_find_unused_parameters_false",
              "ddp_fork_find_unused_parameters_true", "ddp_notebook_find_unused_parameters_false",
              "ddp_notebook_find_unused_parameters_true", "deepspeed_stage_1", "deepspeed_stage_2",
              "deepspeed_stage_2_offload", "deepspeed_stage_3", "deepspeed_stage_3_offload", "deepspeed_stage_3_offload_nvme",
              "fsdp_cpu_offload", "single_device", "single_xla", "xla_debug", "xla", "single_tpu")  # Lightning 2.6's registry
# lightning.pytorch.Trainer's keyword arguments (Lightning 2.6): a `+trainer.<key>` is checked against these without
# importing Lightning (seconds); tests/test_validation.py compares them with the Trainer's signature
TRAINER_KEYS = ("accelerator", "strategy", "devices", "num_nodes", "precision", "logger", "callbacks", "fast_dev_run",
                "max_epochs", "min_epochs", "max_steps", "min_steps", "max_time", "limit_train_batches", "limit_val_batches",
                "limit_test_batches", "limit_predict_batches", "overfit_batches", "val_check_interval",
                "check_val_every_n_epoch", "num_sanity_val_steps", "log_every_n_steps", "enable_checkpointing",
                "enable_progress_bar", "enable_model_summary", "accumulate_grad_batches", "gradient_clip_val",
                "gradient_clip_algorithm", "deterministic", "benchmark", "inference_mode", "use_distributed_sampler",
                "profiler", "detect_anomaly", "barebones", "plugins", "sync_batchnorm", "reload_dataloaders_every_n_epochs",
                "default_root_dir", "enable_autolog_hparams", "model_registry")
# A quick look that learns (>80% validation accuracy, any seed model, seconds on a CPU): MXNet's ±0.01 initialisation
# of the default model stays at chance for the first few thousand images, PyTorch's does not.
QUICK_LOOK = "trainer.max_epochs=2 data.subset=5000 model.init=torch"
FREE_FORM = ("recipe",)  # labels a run carries (a note, a link): any key may be added
HALF_PRECISIONS = ("16-mixed", "16-true", "16", 16)  # float16: CUDA only (Lightning runs bf16 on a CPU instead, silently)


@dataclass(frozen=True)
class Rule:
    """What one leaf may hold: `kind` int|real|bool|str, an optional range (open or closed ends), names, or null."""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    nullable: bool = False
    hint: str = ""

    def check(self, key: str, value: Any) -> None:
        if value is None and self.nullable:
            return
        if self.choices:
            if value not in self.choices:
                names = list(dict.fromkeys(map(str, self.choices)))
                raise ConfigError(fitted(f"{key} must be one of ", names, f" (got {value!r})"))
            return
        if not _is_kind(value, self.kind):
            what = {"int": "an integer", "real": "a number", "bool": "true or false", "str": "a text"}[self.kind]
            raise ConfigError(f"{key} must be {what}{' or null' if self.nullable else ''} (got {value!r}){self.hint}")
        if self.kind == "real" and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number (got {value}){self.hint}")
        if self.kind in ("int", "real") and not _in_range(value, self):
            raise ConfigError(f"{key} must be {self.range_text()} (got {value}){self.hint}")

    def range_text(self) -> str:
        if self.low is not None and self.high is not None and not (self.low_open or self.high_open):
            return f"between {_num(self.low)} and {_num(self.high)}"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {_num(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {_num(self.high)}")
        return " and ".join(parts) or "finite"


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int)
    if kind == "real":
        return isinstance(value, (int, float))
    return isinstance(value, str) and value != ""


def _in_range(value: float, rule: Rule) -> bool:
    if rule.low is not None and (value <= rule.low if rule.low_open else value < rule.low):
        return False
    return rule.high is None or (value < rule.high if rule.high_open else value <= rule.high)


def _int(low: int | None = None, high: int | None = None, **kw: Any) -> Rule:
    return Rule("int", low, high, **kw)


def _real(low: float | None = None, high: float | None = None, **kw: Any) -> Rule:
    return Rule("real", low, high, **kw)


FRACTION = _real(0.0, 1.0)
POSITIVE = _real(0.0, low_open=True)
FLAG = Rule("bool")

# Dotted key patterns (fnmatch; list items are `.0`, `.1`, ...) -> rule. First match wins.
RULES: dict[str, Rule] = {
    "seed": _int(0, SEED_MAX),
    "data.seed": _int(0, SEED_MAX),
    "data.split_seed": _int(0, SEED_MAX),
    "data.batch_size": _int(1),
    "data.eval_batch_size": _int(1),
    "data.chunk_batches": _int(1),
    "data.val_size": _int(),  # the split sizes' bounds are the dataset's: _check_splits
    "data.subset": _int(nullable=True),
    "data.test_subset": _int(nullable=True),
    "data.strokes": FRACTION,
    "data.dataset.train_size": _int(2),
    "data.dataset.test_size": _int(1),
    "data.num_classes": _int(2),
    "data.mean": _real(),
    "data.std": POSITIVE,
    "model.dropout": _real(0.0, 1.0, high_open=True),
    "model.init": Rule("str", choices=MODEL_INITS),
    "model.init_scale": POSITIVE,
    "model.widths.*": _int(1),
    "model.name": Rule("str"),
    "optimizer.lr": _real(0.0, low_open=True, hint="; try optimizer.lr=0.01"),
    "optimizer.weight_decay": _real(0.0),
    "optimizer.momentum": _real(0.0, 1.0, high_open=True),
    "optimizer.dampening": FRACTION,
    "optimizer.nesterov": FLAG,
    "optimizer.betas.*": _real(0.0, 1.0, high_open=True),
    "optimizer.eps": POSITIVE,
    "schedule.boundaries.*": _int(0),
    "schedule.factors.*": POSITIVE,
    "schedule.warmup_epochs": _real(0.0),
    "schedule.min_factor": FRACTION,
    "schedule.pct_start": _real(0.0, 1.0, low_open=True, high_open=True),
    "schedule.div_factor": POSITIVE,
    "schedule.final_div_factor": POSITIVE,
    "aug.rotation": _real(0.0, 180.0),
    "aug.width_shift": FRACTION,
    "aug.height_shift": FRACTION,
    "aug.shear": _real(0.0, math.pi / 2, high_open=True),
    "aug.zoom": _real(0.0, 1.0, high_open=True),
    "aug.stroke": FRACTION,
    "aug.elastic": _real(0.0, 10.0),
    "aug.elastic_sigma": _real(0.5, 10.0),
    "aug.blur": _real(0.0, 3.0),
    "trainer.max_epochs": _int(1),
    "trainer.num_nodes": _int(1),
    "trainer.log_every_n_steps": _int(1),
    "trainer.num_sanity_val_steps": _int(-1),
    "trainer.accelerator": Rule("str", choices=ACCELERATORS),
    "trainer.precision": Rule("str", choices=PRECISIONS + PRECISION_ALIASES),
    "trainer.strategy": Rule("str", choices=STRATEGIES),
    "trainer.deterministic": FLAG,
    "trainer.benchmark": FLAG,
    "trainer.enable_progress_bar": FLAG,
    "trainer.enable_model_summary": FLAG,
    "trainer.gradient_clip_val": _real(0.0, low_open=True, nullable=True),
    "trainer.gradient_clip_algorithm": Rule("str", choices=("norm", "value")),
    "trainer.fast_dev_run": FLAG,
    "progress_refresh": _int(0),
    "model_summary": Rule("str", choices=("line", "table")),
    "early_stopping.patience": _int(1, nullable=True, hint="; null: train all trainer.max_epochs"),
    "early_stopping.min_delta": _real(0.0),
    "time_to_val_acc.*": _real(0.0, 1.0, low_open=True),
    "evaluate_test": FLAG,
    "channels_last": FLAG,
    "compile": FLAG,
    "cuda_graphs": Rule("bool", nullable=True, hint="; null: wherever they apply"),
    "recipe.claimed_test_acc": _real(0.0, 1.0, low_open=True, nullable=True),
    "recipe.ensemble_claimed_test_acc": _real(0.0, 1.0, low_open=True, nullable=True),
    "recipe.claim_kind": Rule("str", choices=("tutorial", "target")),
    "tags.*": Rule("str", hint="; tags=[baseline] or tags=[team:vision]"),
    "tracking.experiment": Rule("str"),
    "tracking.log_checkpoint": FLAG,
    "tracking.figures": FLAG,
    "tracking.synchronous": FLAG,
    "tracking.system_metrics": FLAG,
}
REQUIRED = ("seed", "optimizer.lr", "data.batch_size", "data.val_size", "trainer.max_epochs", "trainer.accelerator")
SKIPPED = ("paths", "data.dataset", "hydra")  # file names and folders: checked where they are read


def leaves(node: Any, prefix: str = "", skipped: tuple[str, ...] = SKIPPED) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for every leaf but those under `skipped`; list items get their index as a key part."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else None
    if items is None:
        yield prefix.rstrip("."), node
        return
    for key, value in items:
        name = f"{prefix}{key}"
        if not name.startswith(skipped):
            yield from leaves(value, f"{name}.", skipped)


def rule_for(key: str) -> Rule | None:
    return next((rule for pattern, rule in RULES.items() if fnmatch.fnmatchcase(key, pattern)), None)


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError, naming the key and what to do, for the first value that cannot train."""
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(" ".join(str(err).split())) from None
    assert isinstance(resolved, dict)
    for key in REQUIRED:
        if OmegaConf.select(cfg, key) is None:
            raise ConfigError(f"{key} is missing from the config")
    for pattern, rule in RULES.items():  # a list or a mapping where one value belongs: `optimizer.lr=[0.1,0.2]`
        value = OmegaConf.select(cfg, pattern) if "*" not in pattern else None
        if isinstance(value, (DictConfig, ListConfig)):
            rule.check(pattern, OmegaConf.to_container(value))
    for key, value in leaves(resolved):
        rule = rule_for(key)
        if rule is not None:
            rule.check(key, value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number (got {value})")
    _check_relations(resolved)
    _check_trainer_keys(resolved["trainer"])
    _check_machine(resolved["trainer"])


def split_sizes(data: Any) -> dict[str, int]:
    """Images in each split of a run: the training files less the validation hold-out (or `subset` of them), the
    hold-out, and the test files (or `test_subset` of them); from `data.dataset`'s sizes, before a file is read."""
    pool = data["dataset"]["train_size"]
    train = data.get("subset") or pool - data["val_size"]
    return {"train": train, "strokes": round((data.get("strokes") or 0.0) * train), "val": data["val_size"],
            "test": data.get("test_subset") or data["dataset"]["test_size"]}


def _check_splits(data: dict[str, Any]) -> None:
    pool, tests = data["dataset"]["train_size"], data["dataset"]["test_size"]
    _int(1, pool - 1).check("data.val_size", data["val_size"])
    _int(1, tests, nullable=True).check("data.test_subset", data.get("test_subset"))
    if data.get("subset") is not None and not 1 <= data["subset"] <= pool - data["val_size"]:
        raise ConfigError(f"data.subset must be between 1 and {pool - data['val_size']} (got {data['subset']}) "
                          f"with data.val_size={data['val_size']}, or null for all")
    training = split_sizes(data)["train"]
    if data["batch_size"] > training:
        raise ConfigError(f"data.batch_size={data['batch_size']} is more than the {training} training images: use at most "
                          f"{training} (one step an epoch), or a larger data.subset")


def _check_relations(cfg: dict[str, Any]) -> None:
    tags = cfg.get("tags") or []
    if not isinstance(tags, list):
        raise ConfigError(f"tags must be a list (got {tags!r}): tags=[baseline] or tags=[team:vision]")
    if reserved := [tag for tag in tags if str(tag).startswith("mlflow.")]:
        raise ConfigError(f"tags: {reserved[0]} is MLflow's own tag; the harness sets it (a run's name: tracking.run_name)")
    _check_splits(cfg["data"])
    schedule = cfg.get("schedule") or {}
    if "boundaries" in schedule or "factors" in schedule:
        boundaries, factors = list(schedule.get("boundaries") or []), list(schedule.get("factors") or [])
        if len(factors) != len(boundaries) + 1:
            raise ConfigError(f"schedule.factors needs exactly one more entry than schedule.boundaries "
                              f"(got {len(factors)} factors for {len(boundaries)} boundaries)")
        if any(b <= a for a, b in zip(boundaries, boundaries[1:])):
            raise ConfigError(f"schedule.boundaries must be increasing epochs (got {boundaries})")
    betas = cfg["optimizer"].get("betas")
    if betas is not None and (not isinstance(betas, list) or len(betas) != 2):
        raise ConfigError(f"optimizer.betas must be two numbers in [0, 1) (got {betas})")
    devices = cfg["trainer"].get("devices", 1)
    ok = (devices == "auto" or devices == -1 or (_is_kind(devices, "int") and devices >= 1)
          or (isinstance(devices, list) and devices and all(_is_kind(d, "int") and d >= 0 for d in devices))
          or (isinstance(devices, str) and all(p.strip().isdigit() for p in devices.split(",") if p.strip())))
    if not ok:
        raise ConfigError(f"trainer.devices must be a count >= 1, -1 (all), 'auto' or a list of device indices (got {devices!r})")


def _check_trainer_keys(trainer: dict[str, Any]) -> None:
    """What the Trainer takes but a recorded, tested run cannot use."""
    if str(trainer.get("precision")) in ("64", "64-true"):
        raise ConfigError(f"trainer.precision={trainer['precision']} (float64) is not supported: the data and the step "
                          "are float32; use 32-true (or bf16-mixed)")
    if trainer.get("fast_dev_run"):
        raise ConfigError(f"trainer.fast_dev_run skips the tested checkpoint and the record; a quick look: {QUICK_LOOK}")


def _check_machine(trainer: dict[str, Any]) -> None:
    """An accelerator this machine does not have is one line, not a traceback from inside Lightning; so is a
    precision the device cannot run."""
    accelerator = trainer["accelerator"]
    if trainer.get("precision") in HALF_PRECISIONS and (accelerator == "cpu" or not _cuda_available()):
        raise ConfigError(f"trainer.precision={trainer['precision']} (float16) needs a CUDA GPU; on a CPU use "
                          "trainer.precision=bf16-mixed or 32-true")
    if accelerator in ("gpu", "cuda") and not _cuda_available():
        raise ConfigError(f"trainer.accelerator={accelerator} but no CUDA GPU is visible; use trainer=cpu or trainer.accelerator=auto")
    if accelerator == "tpu" and importlib.util.find_spec("torch_xla") is None:
        raise ConfigError("trainer.accelerator=tpu but no TPU is available here (torch_xla is not installed); "
                          "use trainer.accelerator=auto or cpu")
    if accelerator == "mps" and not _mps_available():
        raise ConfigError("trainer.accelerator=mps but Apple's MPS is not available here; use trainer.accelerator=auto or cpu")


def _cuda_available() -> bool:
    import torch  # only when a GPU is asked for: keeps the bad-input path fast

    return torch.cuda.is_available()


def _mps_available() -> bool:
    import torch

    return torch.backends.mps.is_available()


def check_added_keys(cfg: DictConfig, added: list[str]) -> None:
    """`+key=value` adds a key Hydra knows nothing about: refused unless what the config builds there takes it
    (the trainer's keys are Lightning's to judge: check_trainer builds one)."""
    for override in added:
        key = override.lstrip("+").partition("=")[0]
        parts = key.split(".")
        owner = next((i for i in range(len(parts) - 1, 0, -1)
                      if OmegaConf.select(cfg, ".".join(parts[:i]) + "._target_") is not None), None)
        if parts[0] in FREE_FORM:
            continue
        if owner is None:
            known = sorted(str(k) for k in (OmegaConf.select(cfg, ".".join(parts[:-1])) or {}) if str(k) != parts[-1])
            head = f"{override}: {key} is not a setting of this harness"
            raise ConfigError(fitted(f"{head}; the keys there: ", known) if known else head)
        node, name = ".".join(parts[:owner]), parts[owner]
        target = OmegaConf.select(cfg, f"{node}._target_")
        if target == "lightning.pytorch.Trainer":
            if name not in TRAINER_KEYS:
                close = nearest(name, TRAINER_KEYS)
                raise ConfigError(f"{override}: Lightning's Trainer takes no {name}" + (
                    f"; did you mean trainer.{close}?" if close else "; its keys: lightning.ai/docs/pytorch/stable/common/trainer.html"))
            continue
        accepted = _parameters(target, OmegaConf.select(cfg, f"{node}.name"))
        if accepted is not None and name not in accepted:
            close = nearest(name, accepted)
            what = f"model {OmegaConf.select(cfg, f'{node}.name')}" if target == "digits_bench.models.create_model" else target
            raise ConfigError(f"{override}: {what} takes no {name}; did you mean {node}.{close}?" if close else
                              fitted(f"{override}: {what} takes no {name}; it takes ", sorted(accepted)))


def _parameters(target: str, name: Any) -> list[str] | None:
    """The keyword arguments `target` takes; None: any. A target that builds what its `name` says (the model
    registry's `create_model`) gives the signature of that thing through its `signature_for(name)`."""
    import importlib
    import inspect

    module, _, attr = target.rpartition(".")
    built = getattr(importlib.import_module(module), attr)
    signature_for = getattr(built, "signature_for", None)
    signature = signature_for(str(name)) if signature_for is not None else inspect.signature(built)
    parameters = signature.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in ("self", "params")]

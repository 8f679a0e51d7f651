"""The graph-safe training step (tensor learning rate, schedule inside the step) trains exactly as the eager one.

On a CPU the step runs eagerly (`step_mode="graph_safe"`): the same code a GPU captures as a CUDA graph.
"""
from __future__ import annotations

import logging

import lightning.pytorch as pl
import pytest
import torch
from hydra.utils import instantiate

from digits_bench.training.run import build_module

from .conftest import compose

# 500 training images in batches of 64: 8 steps per epoch, the last one of 52 images
SMALL = ["data.subset=500", "data.val_size=256", "data.batch_size=64", "trainer.max_epochs=3"]
# the speedrun's model and optimizer (BN CNN, NHWC, Nesterov momentum with weight decay)
CNN = ["model=speedrun", "optimizer=momentum", "optimizer.lr=0.1", "optimizer.nesterov=true",
       "optimizer.weight_decay=0.0005", "channels_last=true"]


def _fit(cfg, step_mode: str | None):
    pl.seed_everything(cfg.seed, verbose=False)
    module = build_module(cfg)
    if step_mode is not None:
        module.step_mode = step_mode
    trainer = pl.Trainer(accelerator="cpu", max_epochs=cfg.trainer.max_epochs, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, datamodule=instantiate(cfg.data))
    return module, trainer


@pytest.mark.parametrize(
    "overrides",
    [
        [*CNN, "schedule=constant"],
        [*CNN, "schedule=steps", "schedule.boundaries=[1,2]", "schedule.factors=[0.1,1.0,0.1]"],
        [*CNN, "schedule=cosine", "schedule.warmup_epochs=1", "schedule.min_factor=0.1"],
        [*CNN, "schedule=onecycle"],
        ["model=mlp_128_64", "optimizer=adam", "schedule=onecycle"],
    ],
    ids=["constant", "steps", "cosine", "onecycle", "adam-onecycle"],
)
def test_graph_safe_step_gives_bit_identical_weights(overrides: list[str]):
    cfg = compose(*overrides, *SMALL)
    eager, eager_trainer = _fit(cfg, None)
    safe, safe_trainer = _fit(cfg, "graph_safe")
    assert eager.step_mode == "eager" and safe.step_mode == "graph_safe"
    assert eager_trainer.global_step == safe_trainer.global_step == 3 * 8
    eager_state, safe_state = eager.net.state_dict(), safe.net.state_dict()
    assert eager_state.keys() == safe_state.keys()
    for name, value in eager_state.items():
        assert torch.equal(value, safe_state[name]), name
    for key in ("train/loss", "train/acc"):  # the same epoch metrics, summed on the device instead of torchmetrics
        assert float(safe_trainer.callback_metrics[key]) == pytest.approx(float(eager_trainer.callback_metrics[key]), rel=1e-5)
    # between epochs the optimizer holds a plain float rate, the one the next step would use, as the schedulers leave it
    safe_lr = safe.optimizers(use_pl_optimizer=False).param_groups[0]["lr"]
    assert isinstance(safe_lr, float) and safe_lr == eager.optimizers(use_pl_optimizer=False).param_groups[0]["lr"]


def test_cuda_graphs_requested_on_cpu_falls_back_in_one_line(caplog: pytest.LogCaptureFixture):
    cfg = compose("model=linear", *SMALL, "trainer.max_epochs=1", "cuda_graphs=true")
    with caplog.at_level(logging.WARNING, logger="digits_bench.training.module"):
        module, _ = _fit(cfg, None)
    lines = [r.getMessage() for r in caplog.records if r.name == "digits_bench.training.module"]
    assert module.step_mode == "eager"
    assert lines == ["CUDA graphs off: they need a CUDA device — training eagerly"]


def test_auto_on_cpu_is_eager_and_silent(caplog: pytest.LogCaptureFixture):
    cfg = compose("model=linear", *SMALL, "trainer.max_epochs=1")
    assert cfg.cuda_graphs is None
    with caplog.at_level(logging.INFO, logger="digits_bench.training.module"):
        module, _ = _fit(cfg, None)
    assert module.step_mode == "eager" and module.warmup_seconds == 0.0
    assert not [r for r in caplog.records if r.name == "digits_bench.training.module"]


class SingleDeviceStrategy:  # what choose_step_mode reads of a Trainer on one CUDA device, without needing one
    root_device = torch.device("cuda", 0)


class DDPStrategy(SingleDeviceStrategy):
    pass


def _trainer(strategy=SingleDeviceStrategy, precision: str = "bf16-mixed", world_size: int = 1):
    return type("T", (), {"strategy": strategy(), "precision": precision, "world_size": world_size, "is_global_zero": True})()


@pytest.mark.parametrize(
    "trainer, overrides, says",
    [
        (_trainer(), [], None),
        (_trainer(precision="32-true"), ["optimizer=adamw", "schedule=cosine"], None),
        (_trainer(DDPStrategy, world_size=2), [], "strategy DDPStrategy (one device only)"),
        (_trainer(precision="16-mixed"), [], "precision 16-mixed (needs 32-true or bf16-mixed)"),
        (_trainer(), ["compile=true"], "compile=true (torch.compile makes its own graphs)"),
    ],
)
def test_cuda_graphs_apply_on_one_cuda_device_and_say_why_not_elsewhere(trainer, overrides: list[str], says: str | None):
    from digits_bench.training.step import choose_step_mode

    cfg = compose("experiment=speedrun", *overrides)
    net = torch.compile(torch.nn.Linear(2, 2)) if cfg.compile else torch.nn.Linear(2, 2)
    optimizer, schedule = instantiate(cfg.optimizer), instantiate(cfg.schedule)
    mode, why = choose_step_mode(None, trainer, net, optimizer, schedule)
    assert (mode, why) == (("graphed", None) if says is None else ("eager", f"CUDA graphs off: {says} — training eagerly"))
    assert choose_step_mode(False, trainer, net, optimizer, schedule) == ("eager", None)


def test_graph_safe_step_runs_under_bf16_autocast_with_augmentation():
    """The graphed step's code under the GPU recipe's autocast and augmentation (eagerly, on the CPU)."""
    cfg = compose(*CNN, "schedule=onecycle", "aug=on", *SMALL, "trainer.max_epochs=1", "trainer.precision=bf16-mixed")
    pl.seed_everything(cfg.seed, verbose=False)
    module = build_module(cfg)
    module.step_mode = "graph_safe"
    trainer = pl.Trainer(accelerator="cpu", precision="bf16-mixed", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, datamodule=instantiate(cfg.data))
    assert module._fast.autocast == torch.bfloat16 and trainer.global_step == 8
    assert torch.isfinite(trainer.callback_metrics["train/loss"]) and 0 <= float(trainer.callback_metrics["train/acc"]) <= 1


def test_a_run_checkpointed_by_the_graph_step_resumes_eagerly_on_the_same_schedule(tmp_path):
    """Trained with CUDA graphs, resumed where there are none: the schedule continues from the step count."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    cfg = compose(*CNN, "schedule=onecycle", *SMALL)
    straight, _ = _fit(cfg, None)  # 3 epochs, eager, uninterrupted

    pl.seed_everything(cfg.seed, verbose=False)
    first = build_module(cfg)
    first.step_mode = "graph_safe"
    # stopped after 2 of 3 epochs (16 steps), as a killed run is
    trainer = pl.Trainer(accelerator="cpu", max_epochs=3, max_steps=16, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    trainer.fit(first, datamodule=instantiate(cfg.data))

    resumed = build_module(cfg)  # would train eagerly on this CPU
    trainer = pl.Trainer(accelerator="cpu", max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(resumed, datamodule=instantiate(cfg.data), ckpt_path=str(tmp_path / "last.ckpt"))
    assert resumed.step_mode == "graph_safe" and trainer.global_step == 3 * 8
    for name, value in straight.net.state_dict().items():
        assert torch.equal(value, resumed.net.state_dict()[name]), name


def test_cuda_graphs_takes_only_true_false_or_null():
    from digits_bench.config import validate
    from digits_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="cuda_graphs must be true or false or null"):
        validate(compose("cuda_graphs=sometimes"))
    validate(compose("cuda_graphs=false"))


def test_the_cli_training_path_runs_the_graph_safe_step(monkeypatch: pytest.MonkeyPatch, isolated_store):
    """MLflow, the LR monitor, checkpoints, the test pass and the report, with the step a GPU would capture."""
    from digits_bench.training.run import train

    from .conftest import TINY, all_runs

    monkeypatch.setattr("digits_bench.training.module.choose_step_mode", lambda *args: ("graph_safe", None))
    result = train(compose("experiment=speedrun", *TINY, "trainer.max_epochs=2"))
    (run,) = all_runs(isolated_store)
    assert run.info.status == "FINISHED" and 0 <= result.metrics["test/acc"] <= 1
    assert {"train/loss", "train/acc", "time/train_s", "time/warmup_s", "time/wall_s"} <= set(run.data.metrics)
    rates = [v for k, v in run.data.metrics.items() if k.startswith("lr")]
    assert rates and all(0 < rate <= 0.1 for rate in rates)

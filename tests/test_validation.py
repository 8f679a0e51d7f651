"""Every config value is checked before any data is read or any run exists: one line, exit 2, no MLflow run."""
from __future__ import annotations

import typing
from pathlib import Path

import pytest

from digits_bench.config import validate
from digits_bench.errors import ConfigError
from digits_bench.config.validation import MODEL_INITS, PRECISIONS

from .conftest import ROOT, all_runs, compose, fits_a_refusal, run_cli

OPTIONS = sorted(f"{group.name}={option.stem}" for group in (ROOT / "conf").iterdir() if group.is_dir()
                 for option in group.glob("*.yaml"))

BAD = [
    (["tags=baseline"], "tags must be a list (got 'baseline'): tags=[baseline] or tags=[team:vision]"),
    (["tags=[1]"], "tags.0 must be a text (got 1)"),
    (["tags=[mlflow.runName:mine]"], "tags: mlflow.runName:mine is MLflow's own tag"),
    (["schedule=steps", "schedule.factors=[-0.1,1.0,0.1,0.01]"], "schedule.factors.0 must be > 0 (got -0.1)"),
    (["schedule=steps", "schedule.factors=[1.0,0.1]"], "schedule.factors needs exactly one more entry than schedule.boundaries"),
    (["schedule=steps", "schedule.boundaries=[6,1,11]"], "schedule.boundaries must be increasing"),
    (["schedule=cosine", "schedule.min_factor=1.5"], "schedule.min_factor must be between 0 and 1"),
    (["schedule=onecycle", "schedule.pct_start=0"], "schedule.pct_start must be > 0 and < 1"),
    (["optimizer.lr=0"], "optimizer.lr must be > 0"),
    (["optimizer.lr=-0.1"], "optimizer.lr must be > 0"),
    (["optimizer.lr=fast"], "optimizer.lr must be a number"),
    (["optimizer.lr=nan"], "optimizer.lr must be a finite number (got nan)"),
    (["optimizer.lr=inf"], "optimizer.lr must be a finite number (got inf)"),
    (["optimizer.lr=-inf"], "optimizer.lr must be a finite number"),
    (["optimizer.momentum=1.5"], "optimizer.momentum must be >= 0 and < 1"),
    (["optimizer=adam", "optimizer.betas=[0.9]"], "optimizer.betas must be two numbers"),
    (["optimizer=adam", "optimizer.eps=0"], "optimizer.eps must be > 0"),
    (["optimizer=momentum", "optimizer.nesterov=maybe"], "optimizer.nesterov must be true or false"),
    (["trainer.accelerator=tpu"], "trainer.accelerator=tpu but no TPU is available here"),
    (["trainer.accelerator=abacus"], "trainer.accelerator must be one of"),
    (["trainer.max_epochs=0"], "trainer.max_epochs must be >= 1"),
    (["trainer.precision=bogus"], "trainer.precision must be one of (got 'bogus'):\n  32-true, bf16-mixed, 16-mixed, bf16-true, 16-true, 64-true"),
    (["trainer.devices=0"], "trainer.devices must be a count >= 1"),
    (["trainer.num_nodes=0"], "trainer.num_nodes must be >= 1"),
    (["data.batch_size=0"], "data.batch_size must be >= 1"),
    (["data.eval_batch_size=0"], "data.eval_batch_size must be >= 1 (got 0)"),
    (["data.val_size=0"], "data.val_size must be between 1 and 59999"),
    (["data.val_size=60000"], "data.val_size must be between 1 and 59999"),
    (["data.chunk_batches=0"], "data.chunk_batches must be >= 1"),
    (["data.std=0"], "data.std must be > 0"),
    (["data.subset=59000"], "data.subset must be between 1 and 55000"),
    (["data.subset=0"], "data.subset must be between 1 and 55000"),
    (["data.test_subset=10001"], "data.test_subset must be between 1 and 10000"),
    (["seed=foo"], "seed must be an integer (got 'foo')"),
    (["seed=-1"], "seed must be between 0 and 4294967295 (got -1)"),
    (["seed=1.5"], "seed must be an integer"),
    (["model.dropout=2"], "model.dropout must be >= 0 and < 1 (got 2)"),
    (["model.dropout=abc"], "model.dropout must be a number (got 'abc')"),
    (["model.init=foo"], "model.init must be one of torch, glorot_uniform, uniform (got 'foo')"),
    (["model.init_scale=0"], "model.init_scale must be > 0"),
    (["model=cnn_best", "model.widths=[32,0,128]"], "model.widths.1 must be >= 1"),
    (["aug=on", "aug.rotation=-8"], "aug.rotation must be between 0 and 180"),
    (["aug=on", "aug.zoom=1"], "aug.zoom must be >= 0 and < 1"),
    (["aug=on", "aug.width_shift=nan"], "aug.width_shift must be a finite number"),
    (["time_to_val_acc=[0.99,1.5]"], "time_to_val_acc.1 must be > 0 and <= 1"),
    (["progress_refresh=-1"], "progress_refresh must be >= 0"),
    (["evaluate_test=maybe"], "evaluate_test must be true or false"),
    (["+model.something=inf"], "model.something must be a finite number"),
    (["+foo=1"], "+foo=1: foo is not a setting of this harness; the keys there:\n  aug, channels_last"),
    (["model=linear", "+model.foo=1"], "+model.foo=1: model linear takes no foo; it takes init, num_classes"),
    (["+optimizer.lrr=0.5"], "+optimizer.lrr=0.5: torch.optim.SGD takes no lrr; did you mean optimizer.lr?"),
    (["+early_stopping.foo=1"], "+early_stopping.foo=1: early_stopping.foo is not a setting of this harness; the keys there: min_delta, patience"),
    (["optimizer.lr=[0.1,0.2]"], "optimizer.lr must be a number (got [0.1, 0.2])"),
    (["trainer.strategy=bogus"], "trainer.strategy must be one of (got 'bogus'):\n  auto, ddp, ddp_spawn"),
    (["trainer.precision=64"], "trainer.precision=64 (float64) is not supported: the data and the step are float32; use 32-true"),
    (["trainer.precision=64-true"], "trainer.precision=64-true (float64) is not supported"),
    (["data.batch_size=1000000000"], "data.batch_size=1000000000 is more than the 55000 training images: use at most 55000"),
    (["data.subset=512", "data.batch_size=1024"], "data.batch_size=1024 is more than the 512 training images"),
    (["+trainer.bogus_key=1"], "+trainer.bogus_key=1: Lightning's Trainer takes no bogus_key; its keys: lightning.ai/docs/"),
    (["+trainer.max_step=10"], "+trainer.max_step=10: Lightning's Trainer takes no max_step; did you mean trainer.max_steps?"),
    (["+trainer.fast_dev_run=true"], "trainer.fast_dev_run skips the tested checkpoint and the record; a quick look: trainer.max_epochs=2"),
    (["trainer.accelerator=cpu", "trainer.precision=16-mixed"], "trainer.precision=16-mixed (float16) needs a CUDA GPU; on a CPU use"),
]

# Hydra's composition errors, each as one line naming the nearest right option or key
UNKNOWN = [
    (["model=nonexistent"], "model=nonexistent: no such option; options:\n  cnn_best, cnn_bn"),
    (["model=mlp128"], "model=mlp128: no such option; did you mean model=mlp_128_64? options:"),
    (["model=Linear"], "model=Linear: no such option; did you mean model=linear? options:\n  cnn_best"),
    (["aug=yes"], "aug=yes: no such option; options: off, on"),
    (["experiment=seed999"], "experiment=seed999: no such option; options:\n  best, reader, reader_short, seed000_lenet"),
    (["optimizer=foo"], "optimizer=foo: no such option; options: adam, adamw, momentum, sgd"),
    (["modle=linear"], "modle=linear: the config has no key modle; did you mean model? keys:\n  aug,"),
    (["foo=1"], "foo=1: the config has no key foo; keys:\n  aug,"),
    (["model=linear", "model.dropout=0.5"], "model.dropout=0.5: model (model=linear) has no key dropout; keys: init, name"),
    (["trainer.max_epoch=3"], "trainer.max_epoch=3: trainer (trainer=auto) has no key max_epoch; did you mean max_epochs?"),
]


@pytest.mark.parametrize(("overrides", "message"), UNKNOWN, ids=[" ".join(o) for o, _ in UNKNOWN])
def test_unknown_option_or_key_is_one_line_naming_the_nearest(overrides: list[str], message: str):
    with pytest.raises(ConfigError) as caught:
        compose(*overrides)
    assert str(caught.value).startswith(message) and fits_a_refusal(str(caught.value))


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_value_is_rejected_by_name(overrides: list[str], message: str):
    with pytest.raises(ConfigError) as caught:
        validate(compose(*overrides))
    assert message in str(caught.value) and fits_a_refusal(str(caught.value))


@pytest.mark.parametrize("override", OPTIONS)
def test_every_shipped_option_passes(override: str):
    """The rules must not reject what the project ships (a GPU option only needs a GPU)."""
    import torch

    cfg = compose(override)
    if cfg.trainer.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
            validate(cfg)
    else:
        validate(cfg)


def test_rule_names_match_the_code_that_uses_them():
    from lightning.fabric.plugins.precision.precision import _PRECISION_INPUT_STR

    from digits_bench.models.init import INITS

    assert set(PRECISIONS) == set(typing.get_args(_PRECISION_INPUT_STR))
    from lightning.pytorch.strategies import StrategyRegistry

    from digits_bench.config.validation import STRATEGIES

    assert set(STRATEGIES) == {"auto", *StrategyRegistry.available_strategies()}
    assert MODEL_INITS == INITS
    import inspect

    import lightning.pytorch as pl

    from digits_bench.config.validation import TRAINER_KEYS

    assert TRAINER_KEYS == tuple(p for p in inspect.signature(pl.Trainer.__init__).parameters if p != "self")


def test_trainer_combination_lightning_refuses_is_one_line_before_a_run(isolated_store: Path):
    from digits_bench.training.run import train

    with pytest.raises(ConfigError, match="^trainer: `max_steps` must be a non-negative integer"):  # a +trainer value is Lightning's to judge
        train(compose("model=linear", "data.subset=128", "data.val_size=64", "+trainer.max_steps=-5"))
    assert all_runs(isolated_store) == []


# the CLI's path for rule families (each rule's message is checked in-process above, in seconds)
CLI_BAD = [
    (["optimizer.lr=0"], "optimizer.lr must be > 0"),
    (["optimizer.lr=fast"], "optimizer.lr must be a number"),
    (["schedule=steps", "schedule.factors=[-0.1,1.0,0.1,0.01]"], "schedule.factors"),
    (["trainer.accelerator=tpu"], "trainer.accelerator"),
]


@pytest.mark.fit
@pytest.mark.parametrize(("overrides", "message"), CLI_BAD, ids=[" ".join(o) for o, _ in CLI_BAD])
def test_cli_bad_value_is_one_line_exit_2_no_run(overrides: list[str], message: str, isolated_store: Path):
    result = run_cli(overrides, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digits_bench: error:") and message in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert all_runs(isolated_store) == []


@pytest.mark.fit
def test_unknown_group_option_lists_choices(isolated_store: Path):
    result = run_cli(["model=resnet9000"], timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    # Hydra's own message spans lines and ends "Set HYDRA_FULL_ERROR=1"; ours is the line, and every option on a second
    line, options = result.stderr.splitlines()
    assert line == "digits_bench: error: model=resnet9000: no such option; options:" and options.startswith("  cnn_best, cnn_bn")
    assert options.endswith("vgg, vgg_bn, vgg_dropout") and len(options) <= 160
    assert all_runs(isolated_store) == []


@pytest.mark.fit
def test_other_entry_points_report_a_bad_override_in_one_line(isolated_store: Path, capsys: pytest.CaptureFixture):
    result = run_cli(["optimizer=lion9000"], timeout=120, module="digits_bench.compare")  # one as typed
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("digits_bench: error: optimizer=lion9000: no such option")
    from digits_bench.bench.__main__ import main as bench

    assert bench(["optimizer=lion9000", "--out", str(isolated_store / "bench")]) == 2  # the same wrapper, in this process
    assert capsys.readouterr().err.startswith("digits_bench: error: optimizer=lion9000: no such option")
    assert not (isolated_store / "bench").exists()
    assert all_runs(isolated_store) == []

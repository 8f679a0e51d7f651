"""Real fits through the one training path, checked in MLflow."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from lightning.pytorch import Callback

from digits_bench.models import list_models
from digits_bench.config.validation import QUICK_LOOK
from digits_bench.training.run import train

from .conftest import ROOT, TINY, all_runs, client_for, compose

pytestmark = pytest.mark.fit
QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "tracking.figures=false"]

TABLES = {"report/confusion_matrix.csv", "report/classification_report.csv", "report/classification_report.md", "report/history.csv"}
FIGURES = {"report/curves.png", "report/confusion_matrix.png", "report/misclassified.png"}


def artifact_paths(client, run_id: str, path: str = "") -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


@pytest.mark.parametrize("model", list_models())
def test_every_model_tiny_fit_is_recorded(model: str, isolated_store: Path):
    extra = ["aug=on", "schedule=steps", "tracking.figures=true"] if model == "vgg_bn" else []
    result = train(compose(f"model={model}", *TINY, *extra))
    runs = all_runs(isolated_store)
    assert [r.info.run_id for r in runs] == [result.run_id]
    run = runs[0]
    assert run.info.status == "FINISHED"
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc", "time/epoch_s", "time/images_per_s",
                "time/warmup_s", "time/wall_s"):
        assert key in run.data.metrics, key
    assert run.data.metrics["time/wall_s"] > run.data.metrics["time/train_s"] > 0
    client = client_for(isolated_store)
    confusion = pd.read_csv(client.download_artifacts(run.info.run_id, "report/confusion_matrix.csv"), index_col=0).to_numpy()
    assert confusion.sum() == 500  # data.test_subset: every test image counted once
    assert run.data.metrics["test/acc"] == pytest.approx(confusion.trace() / confusion.sum())  # the logged number is the report's
    assert run.data.params["model.name"] == model and int(run.data.params["n_params"]) == result.n_params
    assert run.data.tags["choice.model"] == model and run.data.tags["git_commit"] and run.data.tags["device"]
    files = artifact_paths(client, run.info.run_id)
    assert TABLES | {"config.yaml"} <= files and (FIGURES <= files) == (model == "vgg_bn")
    assert any(f.startswith("checkpoints/") and f.endswith(".ckpt") for f in files)


def test_mlp_learns_for_real():
    """Full data, two epochs: a working harness gets mlp_128_64 past 95% on the untouched test set."""
    result = train(compose("model=mlp_128_64", "model.init=torch", "optimizer=sgd", "optimizer.lr=0.1",
                           "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "tracking.figures=false"))
    assert result.metrics["test/acc"] >= 0.95
    assert result.metrics["epoch"] == 1  # two epochs: 0 and 1


def test_params_are_not_truncated_and_config_is_logged(isolated_store: Path):
    long_name = "x" * 400
    result = train(compose(*TINY, f"+recipe.note={long_name}", "model=linear"))
    client = client_for(isolated_store)
    assert client.get_run(result.run_id).data.params["recipe.note"] == long_name
    text = Path(client.download_artifacts(result.run_id, "config.yaml")).read_text()
    assert long_name in text and "linear" in text


class Boom(Callback):
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        raise self.error


@pytest.mark.parametrize(("error", "status"), [(RuntimeError("boom"), "FAILED"), (KeyboardInterrupt(), "KILLED")])
def test_failed_or_interrupted_run_is_never_left_running(error: BaseException, status: str, isolated_store: Path):
    with pytest.raises((RuntimeError, KeyboardInterrupt, SystemExit)):
        train(compose(*TINY, "model=linear"), callbacks=[Boom(error)])
    runs = all_runs(isolated_store)
    assert [r.info.status for r in runs] == [status]


def test_test_set_is_scored_on_the_best_validation_checkpoint(isolated_store: Path):
    result = train(compose(*TINY, "model=linear", "trainer.max_epochs=3"))
    client = client_for(isolated_store)
    val = [m.value for m in client.get_metric_history(result.run_id, "val/acc")]
    assert len(val) == 3
    assert Path(result.best_checkpoint).name == f"best-epoch{val.index(max(val)):02d}.ckpt"
    assert len(client.get_metric_history(result.run_id, "test/acc")) == 1


class RanksAgree(Callback):
    """Under DDP every rank must end with the same weights (gradients all-reduced) and the same train/loss (all ranks')."""

    def on_train_end(self, trainer, pl_module) -> None:
        weights = pl_module.all_gather(torch.cat([p.detach().flatten() for p in pl_module.net.parameters()]))
        loss = pl_module.all_gather(trainer.callback_metrics["train/loss"])
        assert torch.equal(weights[0], weights[1]) and loss[0] == loss[1]


@pytest.mark.slow
def test_ddp_sim_two_processes_one_run_with_ranks_in_step(isolated_store: Path):
    # augmentation: each rank draws its own warps, and the one step still all-reduces into equal weights
    result = train(compose(*TINY, "model=mlp_128_64", "aug=on", "trainer=ddp_sim"), callbacks=[RanksAgree()])
    runs = all_runs(isolated_store)
    assert [r.info.run_id for r in runs] == [result.run_id]
    assert runs[0].info.status == "FINISHED"
    assert "test/acc" in runs[0].data.metrics
    assert runs[0].data.params["trainer.strategy"] == "ddp_spawn"


def test_asynchronous_logging_loses_no_metric(isolated_store: Path):
    result = train(compose(*TINY, "model=linear", "trainer.max_epochs=2", "tracking.synchronous=false"))
    client = client_for(isolated_store)
    assert len(client.get_metric_history(result.run_id, "val/acc")) == 2
    assert client.get_run(result.run_id).info.status == "FINISHED"


@pytest.mark.parametrize("schedule", ["onecycle", "steps"])
def test_chunked_steps_train_exactly_like_single_batches(schedule: str, isolated_store: Path):
    """data.chunk_batches only changes how often Lightning is entered: same steps, same rates, same weights."""
    overrides = ["model=mlp_128_64", *TINY, "trainer.max_epochs=3", f"schedule={schedule}", "optimizer=momentum"]
    single, chunked = (train(compose(*overrides, f"data.chunk_batches={k}")) for k in (1, 3))
    client = client_for(isolated_store)
    for key in ("val/loss", "val/acc", "lr"):
        a = [m.value for m in client.get_metric_history(single.run_id, key)]
        b = [m.value for m in client.get_metric_history(chunked.run_id, key)]
        assert len(a) == 3 and a == b, key
    assert single.metrics["test/acc"] == chunked.metrics["test/acc"]
    if schedule == "steps":  # seed 004's per-epoch rates, as multiples of optimizer.lr (0.01 for momentum)
        rates = [m.value for m in client.get_metric_history(single.run_id, "lr")]
        assert rates == pytest.approx([0.001, 0.01, 0.01])


def test_bf16_autocast_with_channels_last_trains_through_the_same_step(isolated_store: Path):
    """The GPU fast path's precision and memory format, exercised on the CPU so CI covers the code."""
    result = train(compose("model=speedrun", *TINY, "trainer.precision=bf16-mixed", "channels_last=true", "trainer.max_epochs=2"))
    (run,) = all_runs(isolated_store)
    assert run.info.status == "FINISHED" and run.data.params["trainer.precision"] == "bf16-mixed"
    losses = [m.value for m in client_for(isolated_store).get_metric_history(result.run_id, "train/loss")]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses) and losses[1] < losses[0]  # it learns in bf16
    assert result.metrics["test/acc"] > 0.5


def test_a_run_that_ends_at_chance_says_so_in_one_line(caplog: pytest.LogCaptureFixture, isolated_store: Path):
    import logging

    with caplog.at_level(logging.INFO, logger="digits_bench.tracking.record"):
        stuck = train(compose(*TINY, "model=linear", "optimizer.lr=1e-9"))
        learned = train(compose(*TINY, "model=linear", "debug=fast"))  # a different run: 2 chunks, well above chance
        smoke = train(compose(*TINY, "debug=fast"))  # MXNet's init at chance after 2 chunks: a path check, no verdict
    said = [r.getMessage() for r in caplog.records if "chance level" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"run {stuck.run_id}: val/acc never rose above") and "trainer.max_epochs" in said[0]
    assert stuck.metrics["val/acc_best"] < 0.15 < learned.metrics["val/acc_best"] and smoke.metrics["val/acc_best"] < 0.15
    fast = client_for(isolated_store).get_run(learned.run_id)
    assert fast.info.status == "FINISHED" and fast.data.tags["choice.debug"] == "fast" and fast.data.params["trainer.limit_train_batches"] == "2"


def test_gradient_clipping_trains_through_the_one_step_and_fast_dev_run_is_one_line(capsys: pytest.CaptureFixture, isolated_store: Path):
    from digits_bench.__main__ import run

    result = train(compose(*TINY, "model=linear", "+trainer.gradient_clip_val=0.5", "+trainer.gradient_clip_algorithm=value"))
    (recorded,) = all_runs(isolated_store)
    assert recorded.info.status == "FINISHED" and recorded.data.params["trainer.gradient_clip_val"] == "0.5"
    assert result.metrics["test/acc"] > 0.15
    capsys.readouterr()
    assert run(compose(*TINY, "+trainer.fast_dev_run=true")) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("digits_bench: error: trainer.fast_dev_run skips") and QUICK_LOOK in line and len(line) <= 160
    assert len(all_runs(isolated_store)) == 1  # refused before a run existed


def test_debug_presets_check_the_path_the_model_and_the_time(isolated_store: Path):
    """debug=fast records a whole run in seconds (it trains in the chance test above); overfit and profile compose
    to what they promise."""
    fast = compose("debug=fast")
    assert (fast.trainer.limit_train_batches, fast.trainer.max_epochs, fast.data.test_subset) == (2, 1, 500)
    overfit = compose("debug=overfit")
    assert (overfit.data.subset, overfit.data.batch_size, overfit.trainer.max_epochs) == (256, 64, 40)
    assert compose("debug=profile").trainer.profiler == "simple"


def test_debug_profile_prints_its_top_rows_and_keeps_the_report_with_the_run(capsys: pytest.CaptureFixture, isolated_store: Path):
    """Lightning's ~200-row report (fit, then test) becomes the top 15 rows on the console, the whole in the run."""
    result = train(compose(*TINY, "model=linear", "debug=profile", "trainer.max_epochs=1"))
    out = capsys.readouterr().out
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("profile: top 15 of "))
    assert lines[start + 1].split() == ["action", "total", "s", "calls", "mean", "ms", "%", "of", "fit"]
    assert len(lines[start + 3:-1]) == 15 and max(map(len, lines[start:-1])) <= 100 and "Profiler Report" not in out
    assert "run_training_epoch" in out and "{" not in out  # a callback's state key is not its name
    client = client_for(isolated_store)
    assert [a.path for a in client.list_artifacts(result.run_id, "profile")] == ["profile/fit-profile.txt"]
    assert lines[-1].startswith("the whole report: ") and lines[-1].endswith("fit-profile.txt (the run's artifacts: profile/)")


def test_the_quick_look_every_message_offers_learns():
    """The quick look the fast_dev_run refusal and the chance message offer reaches 80% validation accuracy with the
    default model, whose MXNet initialisation stays at chance longest (the other seed models but vgg_bn did too,
    docs/training.md)."""
    result = train(compose(*QUICK_LOOK.split(), *QUIET))
    assert result.metrics["val/acc_best"] > 0.8, result.metrics["val/acc_best"]


def test_the_readme_quick_look_learns():
    readme = (ROOT / "README.md").read_text()
    (line,) = [line for line in readme.splitlines() if line.endswith("# quick look: ~93% validation, seconds")]
    overrides = line.split("#")[0].split()[3:]  # after `python -m digits_bench`
    assert train(compose(*overrides, *QUIET)).metrics["val/acc_best"] > 0.8


def test_debug_overfit_fits_the_default_model_and_says_so_in_one_line(capsys: pytest.CaptureFixture):
    from digits_bench.__main__ import run

    assert run(compose("debug=overfit", *QUIET)) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "overfit: train/acc 1.000 (pass)"
    assert run(compose("debug=overfit", *QUIET, "optimizer.lr=1e-9")) == 1  # a model that cannot fit: a failed check
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("digits_bench: error: overfit: train/acc 0.") and "(fail, under 0.99)" in line

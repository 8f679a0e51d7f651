"""Surviving faults: resume after SIGKILL, determinism, unwritable stores; and the second dataset."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

from digits_bench.__main__ import run
from digits_bench.errors import TrackingError
from digits_bench.training.run import train

from .conftest import ROOT, TINY, all_runs, client_for, compose


@pytest.mark.slow
@pytest.mark.fit
def test_sigkilled_run_resumes_into_the_same_mlflow_run(tmp_path: Path, isolated_store: Path, capfd: pytest.CaptureFixture):
    args = ["model=lenet", "model.init=torch", "aug=on", "data.subset=3000", "data.val_size=500", "data.test_subset=500",
            "trainer.max_epochs=4", "trainer.deterministic=true", "trainer.enable_progress_bar=false", "tracking.figures=false"]
    process = subprocess.Popen([sys.executable, "-m", "digits_bench", *args], cwd=ROOT, env=os.environ.copy(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = Path(os.environ["DIGITS_BENCH_CHECKPOINTS"])
    deadline = time.time() + 180
    while time.time() < deadline and not list(checkpoints.glob("*/last.ckpt")):
        time.sleep(0.2)
    time.sleep(0.5)  # into the second epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    (last,) = list(checkpoints.glob("*/last.ckpt"))
    run_id = last.parent.name
    assert [r.info.status for r in all_runs(isolated_store)] == ["RUNNING"]  # what SIGKILL leaves behind

    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:  # what a console would print; pytest would only record it
        warnings.simplefilter("always")
        assert run(compose(f"resume={run_id}")) == 0  # the CLI's entry, in this process
    said = "".join(capfd.readouterr()) + "".join(str(w.message) for w in caught)
    assert "Checkpoint directory" not in said and "Downloading artifacts" not in said and "Traceback" not in said, said
    runs = all_runs(isolated_store)
    assert [(r.info.run_id, r.info.status) for r in runs] == [(run_id, "FINISHED")]
    client = client_for(isolated_store)
    for key in ("epoch", "lr", "train/loss", "train/acc", "val/loss", "val/acc", "time/epoch_s"):  # one value an epoch
        assert sorted(m.step for m in client.get_metric_history(run_id, key)) == [0, 1, 2, 3], key
    assert [m.value for m in sorted(client.get_metric_history(run_id, "epoch"), key=lambda m: m.step)] == [0, 1, 2, 3]

    straight = train(compose(*args))  # uninterrupted: the same numbers, augmentation's draws included
    def val_accs(run: str) -> list[float]:
        return [m.value for m in sorted(client.get_metric_history(run, "val/acc"), key=lambda m: m.step)]
    assert val_accs(run_id) == val_accs(straight.run_id)
    assert client.get_run(run_id).data.metrics["test/acc"] == straight.metrics["test/acc"]


def test_resume_of_unknown_run_is_one_clear_line(capsys: pytest.CaptureFixture, isolated_store: Path):
    assert run(compose("resume=0123456789abcdef")) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("digits_bench: error: resume=0123456789abcdef: no such run")


@pytest.mark.fit
def test_same_seed_same_metrics_on_cpu(isolated_store: Path):
    overrides = [*TINY, "model=cnn_bn", "aug=on", "trainer.max_epochs=2", "trainer.deterministic=true", "seed=7"]
    first, second = train(compose(*overrides)), train(compose(*overrides))
    client = client_for(isolated_store)
    for key in ("train/loss", "val/loss", "val/acc"):
        a = [m.value for m in client.get_metric_history(first.run_id, key)]
        b = [m.value for m in client.get_metric_history(second.run_id, key)]
        assert a == b, key
    assert first.metrics["test/acc"] == second.metrics["test/acc"]
    third = train(compose(*overrides[:-1], "seed=8"))
    assert client.get_metric_history(third.run_id, "train/loss")[0].value != client.get_metric_history(first.run_id, "train/loss")[0].value


def test_unwritable_store_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DIGITS_BENCH_STORE", str(blocker / "store"))
    with pytest.raises(TrackingError, match="cannot write the MLflow store .* DIGITS_BENCH_STORE"):
        train(compose(*TINY, "model=linear"))
    assert run(compose(*TINY, "model=linear")) == 2  # the CLI's entry: one line, exit 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("digits_bench: error: cannot write the MLflow store")


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.fit
@pytest.mark.skipif(not FASHION.is_dir() and shutil.which("apt-get") is None, reason="needs Debian's dataset-fashion-mnist")
def test_fashion_mnist_runs_every_model_through_a_sweep(tmp_path: Path, isolated_store: Path):
    assert FASHION.is_dir(), "make test installs Debian's dataset-fashion-mnist (make system-deps)"
    from digits_bench.models import list_models
    from digits_bench.sweep.runner import run_sweep
    from digits_bench.sweep.spec import load_sweep

    path = tmp_path / "fashion.yaml"
    path.write_text(yaml.safe_dump({
        "name": "fashion", "base": ["data=fashion_mnist", *TINY, "data.test_subset=100"], "n_trials": len(list_models()),
        "space": {"model": {"type": "categorical", "choices": list_models()}}, "balance": "model", "pruner": {"type": "none"},
    }))
    study = run_sweep(load_sweep(str(path)), f"sqlite:///{tmp_path / 'optuna.db'}")
    assert sorted(t.params["model"] for t in study.trials if t.state.name == "COMPLETE") == list_models()
    runs = [r for r in all_runs(isolated_store) if r.data.tags.get("sweep.role") == "trial"]
    assert {r.data.params["data.dataset.name"] for r in runs} == {"fashion_mnist"}
    assert {r.data.params["data.mean"] for r in runs} == {"0.286"}

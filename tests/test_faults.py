"""Surviving faults: resume of an unknown run, determinism, unwritable stores; and the second dataset.
A SIGKILLed run resumed exactly: tests/test_journey.py."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from digits_bench.__main__ import run
from digits_bench.errors import TrackingError
from digits_bench.training.run import train

from .conftest import TINY, all_runs, client_for, compose


def test_resume_of_unknown_run_is_one_clear_line(capsys: pytest.CaptureFixture, isolated_store: Path):
    assert run(compose("resume=0123456789abcdef")) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("digits_bench: error: resume=0123456789abcdef: there is no MLflow store at ")  # none is created
    assert not (isolated_store / "mlflow.db").exists()


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

"""Optuna sweeps: pruning, NaN trials, kill-and-resume, parallel workers; every trial in Optuna and MLflow."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from digits_bench.compare import study_recipe
from digits_bench.errors import ConfigError
from digits_bench.report.plots import study_plots
from digits_bench.sweep.runner import counted, run_sweep
from digits_bench.sweep.spec import SWEEPS_DIR, load_sweep

from .conftest import ROOT, all_runs

TINY_BASE = ["model=mlp_128_64", "model.init=torch", "data.subset=512", "data.val_size=256", "data.batch_size=64",
             "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def sweep_file(tmp_path: Path, name: str, **fields) -> Path:
    body = {
        "name": name,
        "base": TINY_BASE,
        "space": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 0.3, "log": True}},
        "n_trials": 3,
        "pruner": {"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
        "heartbeat": {"interval": 1, "grace": 3},
        **fields,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def storage_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'optuna.db'}"


def children(store: Path, study: str) -> list:
    return [r for r in all_runs(store) if r.data.tags.get("sweep.study") == study and r.data.tags.get("sweep.role") == "trial"]


def parent(store: Path, study: str):
    (run,) = [r for r in all_runs(store) if r.data.tags.get("sweep.study") == study and r.data.tags.get("sweep.role") == "parent"]
    return run


def test_every_shipped_sweep_file_is_valid():
    names = {p.stem for p in SWEEPS_DIR.glob("*.yaml")}
    assert {"architectures", "mlp", "linear", "lenet", "cnn", "vgg"} <= names
    for name in names:
        spec = load_sweep(name)
        assert spec.n_trials >= 1 and spec.space
    arch = load_sweep("architectures")
    assert arch.balance == "model" and len(next(p for p in arch.space if p.key == "model").choices) == 10


def test_bad_sweep_file_is_rejected(tmp_path: Path):
    with pytest.raises(ConfigError, match="low < high"):
        load_sweep(str(sweep_file(tmp_path, "bad", space={"optimizer.lr": {"type": "float", "low": 1, "high": 0.1}})))
    with pytest.raises(ConfigError, match="no sweep named"):
        load_sweep("does-not-exist")


def test_tiny_sweep_prunes_and_records_parent_and_children(tmp_path: Path, isolated_store: Path):
    # trial 0 learns, trial 1 (lr 1e-6) cannot keep up with it and must be pruned after its first epoch
    spec = load_sweep(str(sweep_file(tmp_path, "tiny", enqueue=[{"optimizer.lr": 0.2}, {"optimizer.lr": 1e-6}])))
    study = run_sweep(spec, storage_url(tmp_path))
    states = [t.state for t in study.trials]
    assert len(states) == 3 and counted(study.trials) == 3
    assert states[0] == TrialState.COMPLETE and states[1] == TrialState.PRUNED
    top = parent(isolated_store, "tiny")
    assert top.info.status == "FINISHED" and top.data.tags["best_trial"] == str(study.best_trial.number)
    runs = children(isolated_store, "tiny")
    assert len(runs) == 3 and all(r.data.tags["mlflow.parentRunId"] == top.info.run_id for r in runs)
    by_trial = {int(r.data.tags["sweep.trial"]): r for r in runs}
    assert by_trial[1].data.tags["sweep.state"] == "PRUNED" and by_trial[1].info.status == "KILLED"
    assert by_trial[0].data.tags["sweep.state"] == "COMPLETE" and by_trial[0].info.status == "FINISHED"
    assert by_trial[0].data.params["optimizer.lr"] == "0.2"
    assert "test/acc" not in by_trial[0].data.metrics  # trials are chosen on validation only
    assert study.best_trial.user_attrs["mlflow_run_id"] == top.data.tags["best_run_id"]
    plots = study_plots(study, tmp_path)  # what `make report` draws per study
    assert [p.name for p in plots] == ["study_tiny_history.png"] and plots[0].stat().st_size > 0
    recipe = study_recipe("tiny", storage_url(tmp_path))  # what `compare --study tiny` re-trains
    assert recipe.name == f"study:tiny#{study.best_trial.number}"
    assert "model=mlp_128_64" in recipe.overrides and f"optimizer.lr={study.best_params['optimizer.lr']!r}" in recipe.overrides


def test_nan_trial_is_recorded_failed_and_the_sweep_goes_on(tmp_path: Path, isolated_store: Path):
    spec = load_sweep(str(sweep_file(tmp_path, "nan", n_trials=2, pruner={"type": "none"},
                                     enqueue=[{"optimizer.lr": 1e6}, {"optimizer.lr": 0.1}],
                                     space={"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1e7, "log": True}})))
    study = run_sweep(spec, storage_url(tmp_path))
    first, second = study.trials
    assert first.state == TrialState.FAIL and "train/loss became" in first.user_attrs["error"]
    assert second.state == TrialState.COMPLETE
    runs = {int(r.data.tags["sweep.trial"]): r for r in children(isolated_store, "nan")}
    assert runs[0].info.status == "FAILED" and runs[0].data.tags["sweep.state"] == "FAIL"
    assert runs[1].info.status == "FINISHED"


def sweep_process(path: Path, url: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "digits_bench.sweep", str(path), "--storage", url, *extra],
                            cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_killed_sweep_resumes_and_loses_no_trial(how: signal.Signals, tmp_path: Path, isolated_store: Path):
    path = sweep_file(tmp_path, "resume", n_trials=3, pruner={"type": "none"},
                      base=[*TINY_BASE, "data.subset=4096", "trainer.max_epochs=6"])
    url = storage_url(tmp_path)
    process = sweep_process(path, url)
    deadline = time.time() + 240
    while time.time() < deadline:  # kill it in its second trial, after its first epoch, well before its last
        time.sleep(0.2)
        try:
            trials = optuna.load_study(study_name="resume", storage=url).trials
        except Exception:
            continue
        if any(t.state == TrialState.COMPLETE for t in trials) and any(
            t.state == TrialState.RUNNING and len(t.intermediate_values) in (1, 2) for t in trials
        ):
            break
    process.send_signal(how)
    process.wait()
    finished_before = [t.params for t in optuna.load_study(study_name="resume", storage=url).trials if t.state == TrialState.COMPLETE]
    assert finished_before
    if how == signal.SIGKILL:
        time.sleep(4)  # past the heartbeat grace period: the killed trial is now stale

    study = run_sweep(load_sweep(str(path)), url)
    trials = study.trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3 and counted(trials) == 3
    assert all(params in [t.params for t in complete] for params in finished_before)  # nothing finished was lost
    killed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(killed) == 1 and killed[0].params in [t.params for t in complete]  # run again with the same params
    statuses = sorted(r.info.status for r in children(isolated_store, "resume"))
    # the killed trial's run (if it got as far as creating one) is closed as KILLED, never left RUNNING
    assert statuses in (["FINISHED"] * 3, ["FINISHED"] * 3 + ["KILLED"])
    assert parent(isolated_store, "resume").info.status == "FINISHED"


def test_two_workers_on_sqlite_lose_nothing(tmp_path: Path, isolated_store: Path):
    path = sweep_file(tmp_path, "pair", n_trials=6, pruner={"type": "none"})
    url = storage_url(tmp_path)
    result = subprocess.run([sys.executable, "-m", "digits_bench.sweep", str(path), "--storage", url, "--workers", "2"],
                            cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="pair", storage=url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6
    runs = children(isolated_store, "pair")
    assert len(runs) == 6 and all(r.info.status == "FINISHED" for r in runs)
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {r.info.run_id for r in runs}
    assert parent(isolated_store, "pair").info.status == "FINISHED"

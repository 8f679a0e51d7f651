"""Optuna sweeps: pruning, NaN trials, kill-and-resume, parallel workers; every trial in Optuna and MLflow."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from digits_bench.compare import study_recipe
from digits_bench.errors import ConfigError
from digits_bench.report.plots import study_plots
from digits_bench.sweep.runner import counted, run_sweep
from digits_bench.sweep.spec import SWEEPS_DIR, load_sweep

from .conftest import ROOT, all_runs, fits_a_refusal, run_cli

TINY_BASE = ["model=mlp_128_64", "tracking.figures=false", "model.init=torch", "data.subset=512", "data.val_size=256", "data.batch_size=64",
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
    path = tmp_path / "exponent.yaml"  # written by hand, as YAML 1.1 reads it: `1.0e5` and `1e-3` are text
    path.write_text("name: exponent\nn_trials: 2\nspace:\n  data.batch_size: {type: int, low: 1e1, high: 1.0e5}\n")
    with pytest.raises(ConfigError) as caught:
        load_sweep(str(path))
    assert str(caught.value) == ("sweep space 'data.batch_size': low: YAML reads 1e1 as text (an exponent needs a dot and a "
                                 "sign, 1.0e+5); write 10.0")


@pytest.mark.fit
def test_tiny_sweep_prunes_and_records_parent_and_children(tmp_path: Path, isolated_store: Path, monkeypatch: pytest.MonkeyPatch):
    closed: list[tuple[str, str]] = []  # every status written, in order: each run's must be written once
    set_terminated = MlflowClient.set_terminated
    monkeypatch.setattr(MlflowClient, "set_terminated",
                        lambda self, run_id, status=None, *a, **k: closed.append((run_id, status)) or set_terminated(self, run_id, status, *a, **k))
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
    assert set(Counter(run_id for run_id, _ in closed).values()) == {1} and len(closed) == 4  # 3 trials and the parent
    assert [status for run_id, status in closed if run_id == by_trial[1].info.run_id] == ["KILLED"]  # never FAILED first
    assert by_trial[0].data.tags["sweep.state"] == "COMPLETE" and by_trial[0].info.status == "FINISHED"
    assert by_trial[0].data.params["optimizer.lr"] == "0.2"
    assert by_trial[0].data.tags["mlflow.runName"] == "tiny #0 optimizer.lr=0.2"  # what the sweep chose, not its plumbing
    assert by_trial[0].data.tags["overrides"] == " ".join([*TINY_BASE, "optimizer.lr=0.2"])
    assert top.data.metrics["val/acc"] == by_trial[0].data.metrics["val/acc"]  # the parent shows its best trial's numbers
    assert "test/acc" not in by_trial[0].data.metrics  # trials are chosen on validation only
    assert study.best_trial.user_attrs["mlflow_run_id"] == top.data.tags["best_run_id"]
    plots = study_plots(study, tmp_path)  # what `make report` draws per study
    assert [p.name for p in plots] == ["study_tiny_history.png"] and plots[0].stat().st_size > 0
    recipe = study_recipe("tiny", storage_url(tmp_path))  # what `compare --study tiny` re-trains
    assert recipe.name == f"study:tiny#{study.best_trial.number}"
    assert "model=mlp_128_64" in recipe.overrides and f"optimizer.lr={study.best_params['optimizer.lr']!r}" in recipe.overrides
    from digits_bench.report.__main__ import main as report_main  # `make report` after a sweep (it once crashed here)
    from digits_bench.training.run import train

    from .conftest import TINY, compose

    train(compose("model=linear", *TINY))  # the leaderboard's one row; the sweep is the studies section

    assert report_main(["--out", str(tmp_path / "results"), "--storage", storage_url(tmp_path), "--all"]) == 0
    assert "**tiny**: 3 trials" in (tmp_path / "results" / "leaderboard.md").read_text()
    assert f"best trial {study.best_trial.number}: {100 * study.best_value:.2f}% val acc" in (tmp_path / "results" / "leaderboard.md").read_text()


@pytest.mark.fit
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


@pytest.mark.fit
def test_an_interrupted_sweep_reruns_its_cut_trial_and_closes_its_run_killed(tmp_path: Path, isolated_store: Path,
                                                                           monkeypatch: pytest.MonkeyPatch):
    """Ctrl-C (or SIGTERM, which the handler turns into the same KeyboardInterrupt) in the second trial's fit:
    the study keeps the first, the rerun trains the cut one again with its parameters, its run ends KILLED."""
    from lightning.pytorch import Callback

    from digits_bench.sweep import runner

    class CtrlC(Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            raise KeyboardInterrupt

    real, calls = runner.train, []

    def second_is_interrupted(cfg, callbacks=None, **kwargs):
        calls.append(cfg)
        return real(cfg, callbacks=[*(callbacks or []), *([CtrlC()] if len(calls) == 2 else [])], **kwargs)

    monkeypatch.setattr(runner, "train", second_is_interrupted)
    path = sweep_file(tmp_path, "cut", n_trials=2, pruner={"type": "none"})
    with pytest.raises((KeyboardInterrupt, SystemExit)):  # Lightning ends an interrupted fit with sys.exit(1)
        run_sweep(load_sweep(str(path)), storage_url(tmp_path))
    study = run_sweep(load_sweep(str(path)), storage_url(tmp_path))
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    (cut,) = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(complete) == 2 and cut.params in [t.params for t in complete] and counted(study.trials) == 2
    assert sorted(r.info.status for r in children(isolated_store, "cut")) == ["FINISHED", "FINISHED", "KILLED"]
    assert parent(isolated_store, "cut").info.status == "FINISHED"


@pytest.mark.slow
@pytest.mark.fit
@pytest.mark.parametrize("how", [signal.SIGKILL])
def test_killed_sweep_resumes_and_loses_no_trial(how: signal.Signals, tmp_path: Path, isolated_store: Path):
    path = sweep_file(tmp_path, "resume", n_trials=2, pruner={"type": "none"},
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
        # a window of four of six epochs: a loaded machine polls slowly
        if any(t.state == TrialState.COMPLETE for t in trials) and any(
            t.state == TrialState.RUNNING and 1 <= len(t.intermediate_values) <= 4 for t in trials
        ):
            break
        assert process.poll() is None, "the sweep ended before it could be killed in a trial"
    else:
        pytest.fail("the sweep never reached a second trial's first epochs within 240 s")
    process.send_signal(how)
    process.wait()
    finished_before = [t.params for t in optuna.load_study(study_name="resume", storage=url).trials if t.state == TrialState.COMPLETE]
    assert finished_before
    # rerun at once: a SIGKILLed trial is still within its heartbeat's grace, failed (and its run closed) in the loop

    study = run_sweep(load_sweep(str(path)), url)
    trials = study.trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 2 and counted(trials) == 2
    assert all(params in [t.params for t in complete] for params in finished_before)  # nothing finished was lost
    killed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(killed) == 1 and killed[0].params in [t.params for t in complete]  # run again with the same params
    statuses = sorted(r.info.status for r in children(isolated_store, "resume"))
    assert statuses == ["FINISHED", "FINISHED", "KILLED"]  # the killed trial's run is closed KILLED, never left RUNNING
    assert parent(isolated_store, "resume").info.status == "FINISHED"


@pytest.mark.slow
@pytest.mark.fit
def test_two_workers_submitted_through_submitit_share_the_budget_and_lose_nothing(sweep_main, tmp_path: Path,
                                                                                  isolated_store: Path):
    """`--launcher local --workers 2`: the workers are jobs of their own (as SLURM's would be), on one study; each
    trial runs once. Popen workers against PostgreSQL: tests/test_server.py."""
    path = sweep_file(tmp_path, "pair", n_trials=3, pruner={"type": "none"})
    url = storage_url(tmp_path)
    code, out, err = sweep_main(str(path), "trainer.max_epochs=1", "--storage", url, "--workers", "2", "--launcher", "local")
    assert code == 0, err[-3000:]
    assert out.startswith("sweep: 2 worker(s) submitted through submitit (local): jobs ")
    study = optuna.load_study(study_name="pair", storage=url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    runs = children(isolated_store, "pair")
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {r.info.run_id for r in runs}
    assert parent(isolated_store, "pair").info.status == "FINISHED"
    logs = "".join(log.read_text() for log in isolated_store.glob("submitit/*/*_log.out"))
    assert sorted(line.split()[2] for line in logs.splitlines() if line.startswith("trial ")) == ["(#0)", "(#1)", "(#2)"]


def test_workers_that_take_the_last_slot_at_once_run_one_trial(tmp_path: Path, isolated_store: Path):
    """Two workers each saw one slot left and created a trial at the same moment (here: both created before either
    runs): the one the storage numbered later gives way before it samples or trains, and is neither counted, retried
    nor shown; the study's budget holds."""
    from digits_bench.sweep import ran
    from digits_bench.sweep.runner import Objective, Surplus, make_storage, open_study, requeue_interrupted

    spec = load_sweep(str(sweep_file(tmp_path, "last", n_trials=1)))
    study = open_study(spec, make_storage(storage_url(tmp_path), spec), create=True)
    first, second = study.ask(), study.ask()  # two workers, released together
    objective = Objective(spec, "0" * 32, client=None)  # type: ignore[arg-type]
    with pytest.raises(Surplus):
        objective(second)
    study.tell(second, state=TrialState.FAIL)  # as study.optimize ends it
    assert not objective.surplus(first) and second.params == {}
    requeue_interrupted(study)  # a trial cut short is retried; a surplus one is not
    assert [t.number for t in ran(study.trials)] == [0] and counted(study.trials) == 0
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.FAIL]


# --- the sweep command line: overrides, --n-trials, progress, bad sweep files (issues 14 and 15) ---

@pytest.fixture
def sweep_main(capfd: pytest.CaptureFixture[str]):
    """`python -m digits_bench.sweep ARGS` in-process: (exit code, stdout, stderr); logger levels restored after."""
    import logging

    from digits_bench.sweep import QUIET_LOGGERS
    from digits_bench.sweep.__main__ import main

    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}

    def call(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capfd.readouterr()
        return code, out, err

    yield call
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.fit
def test_cli_overrides_reach_every_trial_with_one_progress_line_each(sweep_main, tmp_path: Path, isolated_store: Path):
    # a base without the quiet flags: the sweep itself must keep trials from printing bars and summaries
    loud_base = [o for o in TINY_BASE if "enable_" not in o]
    path = sweep_file(tmp_path, "cli", n_trials=5, pruner={"type": "none"}, base=loud_base)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = sweep_main(str(path), "trainer.max_epochs=1", "data.batch_size=128", "--n-trials", "2",
                                    "--storage", storage_url(tmp_path))
    assert code == 0, err
    deprecated = [f"{w.filename}: {w.message}" for w in caught if issubclass(w.category, FutureWarning) and "lightning" not in w.filename]
    assert deprecated == []  # no deprecated Optuna API (Lightning's own internal one is filtered in train.py)
    study = optuna.load_study(study_name="cli", storage=storage_url(tmp_path))
    assert len(study.trials) == 2 and study.metric_names == ["val/acc"]  # the objective is named in optuna-dashboard
    runs = children(isolated_store, "cli")
    assert len(runs) == 2
    assert all(r.data.params["trainer.max_epochs"] == "1" and r.data.params["data.batch_size"] == "128" for r in runs)
    assert {r.data.params["optimizer.lr"] for r in runs} == {str(t.params["optimizer.lr"]) for t in study.trials}
    lines = [line for line in out.splitlines() if line.startswith("trial ")]
    assert len(lines) == 2
    first = study.trials[0].value
    assert lines[0] == f"trial 1/2 (#0)  val/acc {first:.4f}  COMPLETE  best {first:.4f} (#0)"
    assert lines[1].startswith("trial 2/2 (#1)  val/acc ") and lines[1].endswith(f"best {study.best_value:.4f} (#{study.best_trial.number})")
    assert "Epoch 0" not in out + err and "Trainable params" not in out + err  # no per-trial bars or summaries
    table = out.splitlines()[-7:-5]  # then a table of every trial, values as the run names show them
    assert table[0].split() == ["#", "val/acc", "state", "optimizer.lr"] and set(table[1]) <= {"─", " "}
    assert [row.split() for row in out.splitlines()[-5:-3]] == [
        [str(t.number), f"{t.value:.4f}", "COMPLETE", f"{t.params['optimizer.lr']:.4g}"] for t in study.trials]
    best = study.best_trial
    assert out.splitlines()[-3] == f"best trial #{best.number}: val/acc {best.value:.4f}  optimizer.lr={best.params['optimizer.lr']:.4g}"
    top = parent(isolated_store, "cli")  # where to look next, and no storage URL echoed (it may hold a password)
    assert out.splitlines()[-2] == f"sweep 'cli': parent run {top.info.run_id}; the study: optuna-dashboard with your --storage URL"
    assert out.splitlines()[-1].startswith("  its trials in MLflow (") and out.splitlines()[-1].endswith(
        f"?workflowType=machine_learning&viewStateShareKey={top.info.run_id}&compareRunsMode=CHART")
    # resuming the study under other overrides would mix incompatible trials: refused, before any run
    code, out, err = sweep_main(str(path), "trainer.max_epochs=2", "--storage", storage_url(tmp_path))
    assert code == 2 and err.splitlines()[-2:] == [
        "digits_bench: error: study 'cli' was started with data.batch_size=128 trainer.max_epochs=1, not data.batch_size=64 trainer.max_epochs=2",
        "  rerun it with the overrides it was started with, or start a new study with --name NEW"]
    assert len(children(isolated_store, "cli")) == 2


@pytest.mark.fit
def test_all_failed_sweep_exits_nonzero_with_parent_failed(sweep_main, tmp_path: Path, isolated_store: Path):
    path = sweep_file(tmp_path, "doomed", n_trials=2, pruner={"type": "none"},
                      space={"optimizer.lr": {"type": "float", "low": 1e6, "high": 1e7, "log": True}})
    code, out, err = sweep_main(str(path), "trainer.max_epochs=1", "--storage", storage_url(tmp_path))
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("digits_bench: error: sweep 'doomed': no trial completed (2 ran); first error:")
    assert [line.split()[3:6] for line in out.splitlines() if line.startswith("trial ")] == [["val/acc", "-", "FAIL"]] * 2
    assert parent(isolated_store, "doomed").info.status == "FAILED"


@pytest.mark.parametrize(("body", "message"), [
    ("- optimizer.lr\n- model\n", "must be a mapping of name, base, space, n_trials, ... (got a list)"),
    ("name: x\nspace: {optimizer.lr: [1\n", "not valid YAML"),
    ("", "the file is empty"),
    ("space: [optimizer.lr]\nn_trials: 2\n", "'space' must be a mapping"),
    ("space: {optimizer.lr: 0.1}\nn_trials: 2\n", "space 'optimizer.lr' must be a mapping"),
    ("space: {optimizer.lr: {type: float, low: 0.1, high: x}}\nn_trials: 2\n", "needs numbers low < high"),
    ("space: {optimizer.lr: {type: float, low: 0.001, high: 0.1}}\nn_trials: 2\npruner: {type: median, n_startup: 3}\n",
     "unexpected keyword argument 'n_startup'"),
])
def test_malformed_sweep_file_is_one_line(body: str, message: str, sweep_main, tmp_path: Path, isolated_store: Path):
    path = tmp_path / "broken.yaml"
    path.write_text(body)
    code, _, err = sweep_main(str(path))  # in-process: the CLI's own path is run by test_the_sweep_cli_refuses_bad_input
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digits_bench: error: sweep") and message in lines[0], lines


@pytest.mark.parametrize(("space", "overrides", "message"), [
    ({"optimizer.lrr": {"type": "float", "low": 1e-3, "high": 0.1}}, [],
     "space key 'optimizer.lrr' is not in the composed config; did you mean 'optimizer.lr'?"),
    ({"model": {"type": "categorical", "choices": ["lenet", "linear"]}, "model.dropout": {"type": "float", "low": 0.0, "high": 0.5}},
     [], "space key 'model.dropout' is not in the composed config with model=linear"),
    ({"model": {"type": "categorical", "choices": ["lenet", "lenett"]}}, [], "with model=lenett: model=lenett: no such option; did you mean model=lenet?"),
    ({"data.batch_size": {"type": "int", "low": 0, "high": 64}}, [], "space 'data.batch_size' may take 0, which fails: data.batch_size must be >= 1"),
    ({"optimizer.lr": {"type": "float", "low": 1e-3, "high": 0.1}}, ["data.subset=0"], "data.subset must be between 1 and"),
    ({"optimizer.lr": {"type": "float", "low": 1e-3, "high": 0.1}}, ["model=lenett"], "model=lenett: no such option; did you mean model=lenet?"),
    ({"optimizer.lr": {"type": "float", "low": 1e-3, "high": 0.1}}, ["optimizer.lr=0.1"], "searches optimizer.lr; drop that override"),
])
def test_bad_space_key_or_override_is_rejected_before_any_run(space: dict, overrides: list[str], message: str, sweep_main,
                                                              tmp_path: Path, isolated_store: Path):
    path = sweep_file(tmp_path, "typo", space=space)
    code, _, err = sweep_main(str(path), *overrides, "--storage", storage_url(tmp_path))
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()  # one line, and the options on a second where they do not fit on it
    assert message in lines[0] and fits_a_refusal(err.strip().removeprefix("digits_bench: error: ")), lines
    assert all_runs(isolated_store) == [] and not (tmp_path / "optuna.db").exists()  # no trial, no study, no MLflow run


def test_a_sweep_on_slurm_needs_a_database_server_for_its_study(sweep_main, tmp_path: Path, isolated_store: Path,
                                                                 monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    code, out, err = sweep_main(str(sweep_file(tmp_path, "far")), "--launcher", "slurm", "--workers", "4")
    assert code == 2 and err.startswith("digits_bench: error: --launcher slurm: workers on other nodes share the study "
                                        "through a database server; set $OPTUNA_STORAGE=postgresql://") and out == ""
    code, out, err = sweep_main(str(sweep_file(tmp_path, "far")), "hydra.launcher.partition=gpu")
    assert code == 2 and "hydra.launcher keys set the jobs of --launcher local|slurm" in err
    assert all_runs(isolated_store) == []


@pytest.mark.fit
def test_the_sweep_cli_refuses_bad_input_in_one_line_before_any_run(tmp_path: Path, isolated_store: Path):
    path = sweep_file(tmp_path, "typo", space={"optimizer.lrr": {"type": "float", "low": 1e-3, "high": 0.1}})
    result = run_cli([str(path), "--storage", storage_url(tmp_path)], timeout=120, module="digits_bench.sweep")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "digits_bench: error: sweep typo: space key 'optimizer.lrr' is not in the composed config; did you mean 'optimizer.lr'?"]
    assert all_runs(isolated_store) == [] and not (tmp_path / "optuna.db").exists()


class OneWorkerDies:
    """Stands in for subprocess.Popen of the sweep's workers: worker 0 does its work here (and takes over), the
    others die as if SIGKILLed (`codes` says how each ends)."""

    codes: dict[int, int] = {}

    def __init__(self, command: list[str]) -> None:
        from digits_bench.sweep.runner import work
        from digits_bench.sweep.spec import load_sweep as load
        from digits_bench.tracking.handoff import inherited as handed

        index = int(command[command.index("--worker-index") + 1])
        self.returncode = self.codes[index]
        if self.returncode == 0:
            work(load(command[command.index("digits_bench.sweep") + 1]), handed("storage"), handed("parent"), index)

    def wait(self) -> int:
        return self.returncode


@pytest.mark.fit
@pytest.mark.parametrize(("codes", "parent_status"), [({0: 0, 1: -9}, "FINISHED"), ({0: -9, 1: -9}, "FAILED")])
def test_a_dying_worker_is_one_line_and_the_parent_follows_the_study(codes: dict[int, int], parent_status: str, tmp_path: Path,
                                                                    isolated_store: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture):
    from digits_bench.errors import RunFailed

    path = sweep_file(tmp_path, "dying", n_trials=2, pruner={"type": "none"})
    monkeypatch.setattr(OneWorkerDies, "codes", codes)
    real = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda command, *args, **kwargs:
                        OneWorkerDies(command) if "--worker-index" in command else real(command, *args, **kwargs))
    if parent_status == "FINISHED":  # the other worker spent the budget: the study is whole
        study = run_sweep(load_sweep(str(path)), storage_url(tmp_path), workers=2, worker_args=[str(path)])
        assert counted(study.trials) == 2
        assert "sweep dying: worker 1 was killed by signal 9; the other workers ran its trials" in caplog.text
    else:
        with pytest.raises(RunFailed, match=r"^sweep 'dying': worker 0 was killed by signal 9, worker 1 was killed by signal 9 "
                                             r"before the budget was spent; run the same command again"):
            run_sweep(load_sweep(str(path)), storage_url(tmp_path), workers=2, worker_args=[str(path)])
    assert parent(isolated_store, "dying").info.status == parent_status
    assert "RUNNING" not in {r.info.status for r in all_runs(isolated_store)}

"""Nothing lost, nothing half-done (issue 15): concurrent first use, multi-process CPU runs, FINISHED only
when finished, disk or store faults that end in one line, resume of an unknown run, determinism, and the second
dataset. A SIGKILLed run resumed exactly: tests/test_journey.py."""
from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from digits_bench.tracking import record
from digits_bench.__main__ import run
from digits_bench.errors import TrackingError
from digits_bench.predict.loading import best_run
from digits_bench.training.run import train

from .conftest import ROOT, TINY, all_runs, client_for, compose, run_cli

# Smaller than TINY where only the bookkeeping matters.
MINI = ["model=linear", "tracking.figures=false", "data.subset=128", "data.val_size=64", "data.test_subset=100", "data.batch_size=64",
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digits_bench: error:"), stderr[-3000:]
    return lines[0]


@pytest.mark.slow
@pytest.mark.fit
def test_two_processes_on_a_new_store_all_finish(isolated_store: Path):
    assert not isolated_store.exists()
    command = [sys.executable, "-m", "digits_bench", *MINI]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    processes = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in processes]  # type: ignore[union-attr]
    for code, stderr in results:
        assert code == 0, stderr[-3000:]
        assert "Traceback" not in stderr
    runs = all_runs(isolated_store)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}


@pytest.mark.slow
@pytest.mark.fit
def test_two_cpu_processes_without_spawn_finish_with_test_metrics(isolated_store: Path):
    result = run_cli([*MINI, "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (only,) = all_runs(isolated_store)
    assert only.info.status == "FINISHED" and "test/acc" in only.data.metrics


def _processes_using(store: Path) -> list[int]:
    """Live processes started with this test's store in their environment (a leftover rank would be one)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"DIGITS_BENCH_STORE={store}".encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            pass
    return [pid for pid in found if pid != os.getpid()]


def _ranks(parent: int) -> list[int]:
    """The processes `parent` started that train (ddp_spawn's ranks; not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(pid) for pid in children if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]


@pytest.mark.slow
@pytest.mark.fit
@pytest.mark.parametrize("target", ["rank 0 of ddp", "a spawned rank of ddp_sim"])
def test_sigterm_to_any_process_of_a_multi_process_run_stops_them_all_killed(target: str, tmp_path: Path,
                                                                          isolated_store: Path):
    """`kill PID` of the command (rank 0 under `ddp`, whose rank 1 it launched) or of one rank ddp_spawn started:
    every process ends, the run is KILLED, and the command says so in one line with exit 143."""
    launcher = ["trainer.devices=2"] if target.startswith("rank 0") else ["trainer=ddp_sim"]
    args = ["model=linear", "data.subset=20000", "data.val_size=500", "data.test_subset=100", "trainer.max_epochs=200",
            "trainer.accelerator=cpu", "tracking.system_metrics=false", *launcher]  # epoch lines: it is training
    output = tmp_path / "output"
    with open(output, "w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "digits_bench", *args], cwd=ROOT, env=os.environ | {"OMP_NUM_THREADS": "1"},
                                   stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.time() + 240
        while time.time() < deadline and process.poll() is None and "epoch 1 (2 of 200)" not in output.read_text():
            time.sleep(0.2)  # both ranks busy in their collectives
        assert process.poll() is None, output.read_text()[-3000:]
        victim = process.pid if target.startswith("rank 0") else _ranks(process.pid)[-1]
        os.kill(victim, signal.SIGTERM)
        assert process.wait(timeout=60) == 143, output.read_text()[-3000:]
    time.sleep(1)
    assert _processes_using(isolated_store) == []
    assert [r.info.status for r in all_runs(isolated_store)] == ["KILLED"]
    text = output.read_text()
    assert "Traceback" not in text and "Warning" not in text and text.splitlines()[-1].startswith("digits_bench: error: ")


def test_a_signal_stops_what_was_registered_then_interrupts():
    """SIGINT and SIGTERM share one handler: it stops what must stop with the process (a multi-process run's
    launched ranks), then raises KeyboardInterrupt, which closes a run KILLED; the previous handler comes back."""
    from digits_bench import signals

    stopped: list[str] = []
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with signals.interrupts(before_raising=lambda: stopped.append("launched ranks")):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # the handler raises long before this ends
    assert stopped == ["launched ranks"] and signals.received()
    assert signal.getsignal(signal.SIGTERM) == before


SWALLOWED = """
import os, signal, sys, time
from digits_bench.errors import outcome
from digits_bench import signals

class Finalised:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)  # the handler's KeyboardInterrupt is swallowed here

try:
    with signals.interrupts():
        Finalised()  # collected at once
        time.sleep(0.1)
except KeyboardInterrupt as caught:
    print(outcome(caught).status, outcome(caught).exit_code)
"""


def test_an_interrupt_python_swallowed_is_raised_when_its_block_ends_and_says_nothing_of_it():
    """Ctrl-C landing in a finaliser (as while MLflow logs the model) must not let the run end FINISHED with exit 0,
    nor print Python's 7-line "Exception ignored in ..." report before the interrupt's own line."""
    done = subprocess.run([sys.executable, "-c", SWALLOWED], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["KILLED", "130"] and done.stderr == ""


def test_run_ids_reach_the_processes_a_run_starts_through_one_variable():
    from digits_bench.tracking import handoff

    before = {k for k in os.environ if k.startswith("DIGITS_BENCH")}
    with handoff.passing_down(parent="p" * 32):
        with handoff.passing_down(run="r" * 32):
            assert {k for k in os.environ if k.startswith("DIGITS_BENCH")} - before == {handoff.VARIABLE}
            assert (handoff.inherited("run"), handoff.inherited("parent")) == ("r" * 32, "p" * 32)
        assert (handoff.inherited("run"), handoff.inherited("parent")) == (None, "p" * 32)
    assert handoff.VARIABLE not in os.environ


@pytest.mark.fit
def test_crash_after_fit_leaves_the_run_failed(monkeypatch: pytest.MonkeyPatch, isolated_store: Path):
    def broken_report(*args, **kwargs):
        raise RuntimeError("report step crashed")

    monkeypatch.setattr(record, "log_run_report", broken_report)
    with pytest.raises(RuntimeError, match="report step crashed"):
        train(compose(*MINI))
    (only,) = all_runs(isolated_store)
    assert only.info.status == "FAILED"
    assert "test/acc" in only.data.metrics  # it did get that far: fit and test were done, yet not FINISHED


@pytest.mark.fit
def test_resume_of_a_finished_run_is_refused_in_one_line(capsys: pytest.CaptureFixture, isolated_store: Path):
    finished = train(compose(*MINI))
    capsys.readouterr()
    assert run(compose(f"resume={finished.run_id}")) == 2
    assert f"resume={finished.run_id}: that run already FINISHED" in one_error_line(capsys.readouterr().err)
    client = client_for(isolated_store)
    assert len(client.get_metric_history(finished.run_id, "test/acc")) == 1  # not scored a second time
    assert client.get_run(finished.run_id).info.status == "FINISHED"


def test_predict_best_skips_a_finished_run_without_a_model(tmp_path: Path, isolated_store: Path):
    from digits_bench.tracking import make_client

    client = make_client(compose())
    experiment = client.create_experiment("picks", artifact_location=(isolated_store / "artifacts" / "picks").as_uri())
    checkpoint = tmp_path / "best-epoch00.ckpt"
    checkpoint.write_bytes(b"weights")
    runs = {}
    for name, val_acc, with_model in (("with-model", 0.95, True), ("without-model", 0.99, False), ("unfinished", 0.999, True)):
        run_id = client.create_run(experiment, run_name=name).info.run_id
        client.log_metric(run_id, "val/acc", val_acc)
        if with_model:
            client.log_artifact(run_id, str(checkpoint), "checkpoints")
        if name != "unfinished":
            client.set_terminated(run_id, "FINISHED")
        runs[name] = run_id
    assert best_run(client, "picks") == runs["with-model"]


@pytest.mark.fit
def test_diverging_run_is_failed_with_one_line(capsys: pytest.CaptureFixture, isolated_store: Path):
    assert run(compose(*TINY, "model=mlp_128_64", "optimizer.lr=1e6", "trainer.max_epochs=3")) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "training diverged" in line and "lower optimizer.lr" in line
    assert [r.info.status for r in all_runs(isolated_store)] == ["FAILED"]


@pytest.mark.fit
def test_read_only_artifacts_folder_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                                isolated_store: Path):
    # Tests may run as root, which ignores chmod: raise what a read-only artifacts/ folder raises.
    def read_only(self, local_file, artifact_path=None):
        raise PermissionError(errno.EACCES, "Permission denied", str(isolated_store / "artifacts" / "config.yaml"))

    monkeypatch.setattr(LocalArtifactRepository, "log_artifact", read_only)
    assert run(compose(*MINI)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "cannot write" in line and "artifacts" in line and "Permission denied" in line
    assert [r.info.status for r in all_runs(isolated_store)] == ["FAILED"]


@pytest.mark.fit
def test_full_store_disk_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, isolated_store: Path):
    def disk_full(self, *args, **kwargs):
        raise MlflowException("(sqlite3.OperationalError) database or disk is full")

    monkeypatch.setattr(SqlAlchemyStore, "log_batch", disk_full)
    assert run(compose(*MINI)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "database or disk is full" in line and "DIGITS_BENCH_STORE" in line and "start again" in line


@pytest.mark.fit
def test_an_existing_store_on_a_full_disk_says_disk_full(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                                         isolated_store: Path):
    """SQLite reports a full disk under an existing store's journal as "disk I/O error": the line says disk full."""
    import shutil

    from digits_bench.tracking import store

    def io_error(self, *args, **kwargs):
        raise MlflowException("(sqlite3.OperationalError) disk I/O error")

    usage = shutil.disk_usage(isolated_store.parent)
    monkeypatch.setattr(SqlAlchemyStore, "log_batch", io_error)
    monkeypatch.setattr(store.shutil, "disk_usage", lambda path: usage._replace(free=4096))
    assert run(compose(*MINI)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("digits_bench: error: disk full writing the MLflow store sqlite:///") and "disk I/O error" in line


def test_a_store_that_fills_the_disk_while_it_is_created_is_not_left_half_migrated(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, isolated_store: Path):
    """Its migrations ran out of space halfway: no store is left (every later run would fail on its half-made
    schema), the command says so in one line, and once there is space the store is created whole."""
    import sqlite3

    import mlflow.store.db.utils as db_utils

    real = db_utils._initialize_tables

    def fills_up(engine):
        real(engine)  # the tables are made, then the disk is full
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(db_utils, "_initialize_tables", fills_up)
    assert run(compose(*MINI)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "cannot write the MLflow store" in line and "database or disk is full" in line and "DIGITS_BENCH_STORE" in line
    assert [p.name for p in isolated_store.iterdir()] == ["mlflow.db.lock"]  # no store, no half-built hidden one
    monkeypatch.setattr(db_utils, "_initialize_tables", real)
    from digits_bench.tracking import make_client

    client = make_client(compose(*MINI))
    assert client.search_experiments() and (isolated_store / "mlflow.db").is_file()


def test_torch_saves_full_disk_error_is_a_disk_full_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """torch.save's zip writer reports ENOSPC as `RuntimeError: [enforce fail at inline_container.cc:672]`."""
    import shutil
    from collections import namedtuple

    from digits_bench.errors import disk_message
    from digits_bench.training.checkpoint_io import AtomicCheckpointIO

    def enforce_fail(obj, f, *args, **kwargs):
        f.write(b"PK half a zip")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", enforce_fail)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: namedtuple("usage", "total used free")(10, 10, 0))
    with pytest.raises(OSError) as caught:
        AtomicCheckpointIO().save_checkpoint({"epoch": 0}, tmp_path / "last.ckpt")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "last.ckpt")
    assert disk_message(caught.value).startswith(f"disk full writing {tmp_path / 'last.ckpt'}")
    assert list(tmp_path.iterdir()) == []  # the partial file is gone


@pytest.mark.fit
def test_full_checkpoint_disk_leaves_no_truncated_checkpoint_and_resume_works(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, isolated_store: Path):
    """The disk fills up between epoch 1's new best and its last.ckpt (where a kill can land too): last.ckpt still
    names epoch 0's best, which is still there; the resumed run trains epoch 1 again and ends with one best."""
    real_save, saved = torch.save, []

    def fills_up(obj, f, *args, **kwargs):
        if len(saved) < 3:  # epoch 0: best and last; epoch 1: its new best
            saved.append(obj["epoch"])
            return real_save(obj, f, *args, **kwargs)
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", fills_up)
    cfg = compose(*TINY, "model=linear", "trainer.max_epochs=2", "optimizer.lr=0.5")
    assert run(cfg) == 2
    monkeypatch.setattr(torch, "save", real_save)
    assert saved == [0, 0, 1]
    line = one_error_line(capsys.readouterr().err)
    (failed,) = all_runs(isolated_store)
    assert "disk full writing" in line and f"resume={failed.info.run_id}" in line
    folder = Path(os.environ["DIGITS_BENCH_CHECKPOINTS"]) / failed.info.run_id
    # no temporary file; the best last.ckpt names kept until a last.ckpt names its successor
    assert sorted(p.name for p in folder.iterdir()) == ["best-epoch00.ckpt", "best-epoch01.ckpt", "last.ckpt"]
    assert torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)["epoch"] == 0

    resumed = train(compose(f"resume={failed.info.run_id}"))
    assert resumed.run_id == failed.info.run_id
    assert client_for(isolated_store).get_run(resumed.run_id).info.status == "FINISHED"
    assert sorted(p.name for p in folder.iterdir()) == sorted({"last.ckpt", Path(resumed.best_checkpoint).name})


@pytest.mark.fit
def test_unreachable_tracking_server_fails_fast_naming_mlflow_tracking_uri(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    with pytest.raises(TrackingError, match="cannot reach the MLflow server http://127.0.0.1:9") as caught:
        train(compose(*MINI))
    assert "MLFLOW_TRACKING_URI" in str(caught.value) and "DIGITS_BENCH_STORE" not in str(caught.value)
    assert run(compose(*MINI)) == 2  # the CLI's entry: one line
    assert "MLFLOW_TRACKING_URI" in one_error_line(capsys.readouterr().err)  # at once: MLflow's own retries take minutes


def test_a_login_in_the_tracking_uri_is_one_line_naming_mlflows_variables(monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture):
    """`http://user:pw@host` read as a host name ("Name or service not known") while the server was up: now the
    command says where a login goes, and never prints the password."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://ana:s3cret@127.0.0.1:5005")
    assert run(compose(*MINI)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.endswith("the MLflow URI carries a login: use http://127.0.0.1:5005 and put the user and password in "
                         "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD") and "s3cret" not in line


@pytest.mark.fit
def test_processes_logging_one_dataset_at_the_same_instant_all_record_it(isolated_store: Path):
    """Issue 29's lost trial: three first runs on a new store each log the dataset; MLflow checks, then inserts, and
    a run that lost the race failed with `UNIQUE constraint failed: datasets...`. Three processes, released
    together by a barrier, 8 times (a new experiment each, so each round races for a new row): none may fail."""
    import multiprocessing

    from omegaconf import OmegaConf

    from digits_bench.tracking.store import make_client, tracking_uri

    from .race_workers import log_together

    cfg = compose(*MINI)
    client = make_client(cfg)
    workers, rounds = 3, []
    for round_ in range(8):
        experiment = client.create_experiment(f"race-{round_}")
        rounds.append(tuple(client.create_run(experiment).info.run_id for _ in range(workers)))
    spawn = multiprocessing.get_context("spawn")
    barrier, errors = spawn.Barrier(workers), spawn.Queue()
    processes = [spawn.Process(target=log_together, args=(tracking_uri(cfg), OmegaConf.to_yaml(cfg, resolve=True), rounds, i,
                                                          barrier, errors)) for i in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=180)
    lost = []
    while not errors.empty():
        lost.append(errors.get())
    assert [p.exitcode for p in processes] == [0] * workers and lost == []
    for run_ids in rounds:
        assert all(len(client.get_run(r).inputs.dataset_inputs) == 1 for r in run_ids)


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

"""Hydra multirun (`python -m digits_bench -m ...`) with its jobs launched through submitit (`hydra/launcher=local`,
each job a process of its own, as on a cluster): a failing job, and a stopped multirun. The happy multirun with Hydra's
basic launcher is a step of tests/test_journey.py."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT, TINY, all_runs

pytestmark = pytest.mark.fit


def multirun(tmp_path: Path, *overrides: str, **popen: object) -> subprocess.Popen:
    """`python -m digits_bench -m OVERRIDES`, from an empty folder, so anything Hydra writes to the working directory
    shows up there."""
    work = tmp_path / "cwd"
    work.mkdir()
    env = os.environ | {"PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path / "tmp"), "OMP_NUM_THREADS": "1"}
    (tmp_path / "tmp").mkdir()
    return subprocess.Popen([sys.executable, "-m", "digits_bench", "-m", *overrides], cwd=work, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)  # type: ignore[call-overload]


def job_logs(store: Path) -> str:
    return "".join(log.read_text() for log in sorted(store.glob("submitit/*/*_log.err")))


@pytest.mark.slow
def test_a_failed_job_launched_elsewhere_is_reported_and_the_others_go_on(tmp_path: Path, isolated_store: Path):
    process = multirun(tmp_path, "hydra/launcher=local", "optimizer.lr=1e6,0.1", *TINY)  # job 0 diverges
    out, err = process.communicate(timeout=300)
    assert process.returncode == 1, err[-3000:]  # a training failure, not bad input
    (line,) = [line for line in err.splitlines() if line.startswith("multirun: ")]
    assert line.startswith("multirun: 1 job(s) failed: #0 (exit status 1, its log: ") and "Traceback" not in err
    log = Path(line.split("its log: ")[1].rstrip(")"))
    assert log.parent.parent == isolated_store / "submitit"
    assert "digits_bench: error: training diverged" in log.read_text()  # the job's own one line, in its log
    runs = all_runs(isolated_store)
    (parent,) = [r for r in runs if r.data.tags.get("multirun.role") == "parent"]
    statuses = {r.data.tags["multirun.job"]: r.info.status for r in runs if r is not parent}
    assert statuses == {"0": "FAILED", "1": "FINISHED"} and parent.info.status == "FAILED"
    assert parent.data.tags["multirun.failed_jobs"] == "1" and "test/acc_mean" in parent.data.metrics
    job = next(r for r in runs if r.data.tags.get("multirun.job") == "1")
    assert f"multirun: job #1 FINISHED  val/acc_best {job.data.metrics['val/acc_best']:.4f}" in out
    assert list((tmp_path / "cwd").iterdir()) == []


@pytest.mark.slow
def test_stopping_a_multirun_stops_the_jobs_it_launched_killed(tmp_path: Path, isolated_store: Path):
    """`kill PID` of the command while its two jobs train in processes of their own: each job's run ends KILLED, no
    job outlives the command, which ends in one line with 143."""
    process = multirun(tmp_path, "hydra/launcher=local", "optimizer.lr=0.1,0.05", "model=linear", "data.subset=20000",
                       "data.val_size=500", "data.test_subset=100", "trainer.max_epochs=200", "tracking.system_metrics=false")
    deadline = time.time() + 120
    while time.time() < deadline and job_logs(isolated_store).count("epoch 1 (2 of 200)") < 2:
        time.sleep(0.3)  # both jobs training
    assert job_logs(isolated_store).count("epoch 1 (2 of 200)") == 2, job_logs(isolated_store)[-3000:]
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=90)
    assert process.returncode == 143 and err.splitlines()[-1] == "digits_bench: error: stopped (SIGTERM)", err[-3000:]
    assert "Traceback" not in err
    runs = all_runs(isolated_store)
    assert sorted((r.data.tags["multirun.role"], r.info.status) for r in runs) == [
        ("job", "KILLED"), ("job", "KILLED"), ("parent", "KILLED")]
    assert subprocess.run(["pgrep", "-f", str(isolated_store / "submitit")], capture_output=True).stdout == b""

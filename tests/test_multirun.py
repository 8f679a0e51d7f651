"""Hydra multirun (`python -m digits_bench -m ...`) with its jobs launched through submitit (`hydra/launcher=local`,
each job a process of its own, as on a cluster): a job that fails while the others train, then the multirun stopped.
The happy multirun with Hydra's basic launcher is a step of tests/test_journey.py."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from digits_bench.tracking.multirun import exit_status, failed_jobs

from .conftest import ROOT, all_runs


def job_logs(store: Path) -> str:
    return "".join(log.read_text() for log in sorted(store.glob("submitit/*/*_log.err")))


@pytest.mark.slow
@pytest.mark.fit
def test_a_job_fails_the_others_go_on_and_a_stop_ends_every_job_killed(tmp_path: Path, isolated_store: Path):
    """Job #0 is refused at once (a bad value only it has): it is reported (on the parent run, and by the command) while job #1 trains on. Then
    `kill PID` of the command: job #1's run ends KILLED, no job outlives the command, which ends in one line, 143."""
    work = tmp_path / "cwd"  # an empty folder: anything Hydra writes to the working directory shows up there
    work.mkdir()
    env = os.environ | {"PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "digits_bench", "-m", "hydra/launcher=local", "optimizer.lr=-1,0.1", "model=linear",
         "data.subset=20000", "data.val_size=500", "data.test_subset=100", "trainer.max_epochs=200",
         "tracking.system_metrics=false"], cwd=work, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not ("optimizer.lr must be > 0" in job_logs(isolated_store) and "epoch 2 (3 of 200)" in job_logs(isolated_store)):
        time.sleep(0.3)
    assert "multirun: job #0 failed (exit status 2, its log: " in job_logs(isolated_store)  # job #0's own line
    process.send_signal(signal.SIGTERM)  # job #1 still training
    out, err = process.communicate(timeout=90)
    assert process.returncode == 143 and "Traceback" not in err, err[-3000:]
    failed, stopped = err.strip().splitlines()[-2:]
    assert failed.startswith("multirun: 1 job(s) failed: #0 (exit status 2, its log: ")
    log = Path(failed.split("its log: ")[1].rstrip(")"))
    assert log.parent.parent == isolated_store / "submitit" and "digits_bench: error: optimizer.lr must be > 0" in log.read_text()
    assert stopped == "digits_bench: error: stopped (SIGTERM)"
    runs = all_runs(isolated_store)
    (parent,) = [r for r in runs if r.data.tags.get("multirun.role") == "parent"]
    # job #0 was refused before it opened a run; job #1's was stopped
    assert {r.data.tags["multirun.job"]: r.info.status for r in runs if r is not parent} == {"1": "KILLED"}
    assert parent.info.status == "KILLED" and parent.data.tags["multirun.failed_jobs"] == "1"
    assert subprocess.run(["pgrep", "-f", str(isolated_store / "submitit")], capture_output=True).stdout == b""
    assert list(work.iterdir()) == []


def test_the_end_of_a_multirun_names_its_failed_jobs_in_order_and_exits_with_the_worst_status():
    tags = {"multirun.failed.10": "exit status 2, its log: b", "multirun.failed.2": "exit status 1, error above",
            "multirun.overrides": "model=a,b"}
    assert failed_jobs(tags) == {"#2": "exit status 1, error above", "#10": "exit status 2, its log: b"}
    assert exit_status(list(failed_jobs(tags).values())) == 2 and exit_status(["RunFailed: no test metric"]) == 1

"""Hydra multirun (`python -m digits_bench -m ...`): jobs grouped under one MLflow parent run, like a sweep's trials."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, TINY, all_runs

pytestmark = pytest.mark.fit


def multirun(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """Run from an empty folder, so anything Hydra writes to the working directory shows up there."""
    work = tmp_path / "cwd"
    work.mkdir()
    env = os.environ | {"PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    return subprocess.run([sys.executable, "-m", "digits_bench", "-m", *overrides, *TINY], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_multirun_jobs_are_children_of_one_parent_run(tmp_path: Path, isolated_store: Path):
    result = multirun(tmp_path, "model=linear,mlp_128_64")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "[HYDRA] Launching 2 jobs locally" in lines
    assert any(line.startswith("[HYDRA] \t#0 : model=linear") for line in lines)
    assert any(line.startswith("[HYDRA] \t#1 : model=mlp_128_64") for line in lines)
    runs = all_runs(isolated_store)
    (parent,) = [r for r in runs if r.data.tags.get("multirun.role") == "parent"]
    jobs = [r for r in runs if r is not parent]
    assert parent.info.status == "FINISHED" and parent.data.tags["mlflow.runName"].startswith("multirun:model=linear,mlp_128_64")
    assert len(jobs) == 2 and all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in jobs)
    assert {r.data.tags["multirun.job"]: r.data.params["model.name"] for r in jobs} == {"0": "linear", "1": "mlp_128_64"}
    assert all(r.info.status == "FINISHED" for r in jobs)
    assert list((tmp_path / "cwd").iterdir()) == []  # no multirun/ (nor outputs/, .hydra/) folder
    assert [p.name for p in (tmp_path / "tmp").glob("*/*")] == ["multirun.yaml"]  # Hydra's only file, in the temp folder


@pytest.mark.slow
def test_multirun_with_a_failed_job_ends_its_parent_failed(tmp_path: Path, isolated_store: Path):
    result = multirun(tmp_path, "optimizer.lr=1e6,0.1")  # the first job diverges, the second still runs
    assert result.returncode != 0
    assert result.returncode == 1  # a training failure, not bad input
    assert "digits_bench: error: training diverged" in result.stderr and "Traceback" not in result.stderr
    assert "multirun: job #0 failed" in result.stderr and "multirun: 1 job(s) failed: #0" in result.stderr
    runs = all_runs(isolated_store)
    (parent,) = [r for r in runs if r.data.tags.get("multirun.role") == "parent"]
    statuses = {r.data.tags["multirun.job"]: r.info.status for r in runs if r is not parent}
    assert statuses == {"0": "FAILED", "1": "FINISHED"}
    assert parent.info.status == "FAILED"

"""Hydra multirun (`python -m digits_bench -m ...`) with a failing job; the happy multirun is a step of tests/test_journey.py."""
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

"""Shared fixtures: an isolated MLflow store per test, the real MNIST files, and the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import pytest
import torch
from mlflow.tracking import MlflowClient

from digits_bench.config import compose_config
from digits_bench.tracking import make_client

ROOT = Path(__file__).resolve().parent.parent

if os.environ.get("PYTEST_XDIST_WORKER"):
    # two test workers on two cores: one math thread each (and in their subprocesses), or they thrash
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
DATA_DIR = Path(os.environ.get("DIGITS_BENCH_DATA", ROOT / "data")).resolve()

# Small and fast, but real: every tiny fit trains on real MNIST images.
TINY = ["data.subset=512", "data.val_size=256", "data.test_subset=500", "data.batch_size=64",
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


@pytest.fixture(autouse=True)
def isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own SQLite MLflow store and checkpoint folder; the data is shared."""
    store = tmp_path / "mlruns"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DIGITS_BENCH_RUN_ID", raising=False)
    monkeypatch.setenv("DIGITS_BENCH_STORE", str(store))
    monkeypatch.setenv("DIGITS_BENCH_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("DIGITS_BENCH_DATA", str(DATA_DIR))
    return store


def compose(*overrides: str):
    return compose_config(list(overrides))


def client_for(store: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{store / 'mlflow.db'}")


def all_runs(store: Path) -> list:
    """Every run in the store, of any status; empty when the store was never created."""
    if not (store / "mlflow.db").exists():
        return []
    client = client_for(store)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments) if experiments else []


def run_cli(args: Sequence[str], timeout: float = 300, module: str = "digits_bench") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy())


__all__ = ["TINY", "all_runs", "client_for", "compose", "make_client", "run_cli"]

"""Shared fixtures: an isolated MLflow store per test, the real MNIST files, configs composed once, and the CLI."""
from __future__ import annotations

import copy
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Sequence

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from digits_bench.config import compose_config
from digits_bench.tracking import make_client

ROOT = Path(__file__).resolve().parent.parent

if os.environ.get("PYTEST_XDIST_WORKER"):
    # two test workers on two cores: one math thread each (and in their subprocesses), or they thrash
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
DATA_DIR = Path(os.environ.get("DIGITS_BENCH_DATA", ROOT / "data")).resolve()

# Small and fast, but real: every tiny fit trains on real MNIST images.
# Pictures are most of a tiny run's time; test_train draws them for one model (tracking.figures=true).
TINY = ["data.subset=512", "data.val_size=256", "data.test_subset=500", "data.batch_size=64",
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "tracking.figures=false"]


# Modules whose tests share a costly module fixture (predict trains a model, server starts PostgreSQL and
# MLflow): one worker runs all of such a module. An xdist_group mark with --dist loadgroup would say it,
# but with pytest >= 9.2 loadgroup silently ignores the mark (pytest-xdist issue 1386).
ONE_WORKER = {"tests/test_predict.py", "tests/test_server.py"}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """For `-n 2 --dist load`: each test goes to whichever worker is free, ONE_WORKER modules whole."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class TestOrModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER else nodeid

    return TestOrModule(config, log)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: starts processes of its own (CLI runs, DDP ranks, sweep workers): scheduled first")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """On test workers, the slowest first, then the other fits: the long tests start early and the short pure
    ones fill the end, so neither worker waits at the end for the other."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: (item.get_closest_marker("slow") is None, item.get_closest_marker("fit") is None))


@pytest.fixture(autouse=True)
def logger_levels() -> Iterator[None]:
    """A command's quiet levels (a sweep quiets training's per-run lines) last as long as its process: in a test
    process, no longer than the test that ran the command."""
    names = ["", *logging.root.manager.loggerDict]
    saved = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture(autouse=True)
def isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own SQLite MLflow store and checkpoint folder; the data is shared."""
    store = tmp_path / "mlruns"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DIGITS_BENCH_RUNS", raising=False)
    monkeypatch.setenv("DIGITS_BENCH_STORE", str(store))
    monkeypatch.setenv("DIGITS_BENCH_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("DIGITS_BENCH_DATA", str(DATA_DIR))
    return store


_COMPOSED: dict[tuple[str, ...], tuple[DictConfig, DictConfig]] = {}


def compose(*overrides: str) -> DictConfig:
    """compose_config(overrides), composed once a session: Hydra takes ~0.1 s to compose, a test needs a copy.

    Paths read the environment when accessed (oc.env), not when composed, so a cached config follows
    each test's store. HydraConfig is set to this composition's, as compose_config leaves it, so
    group_choices() answers for the config just returned.
    """
    if overrides not in _COMPOSED:
        cfg = compose_config(overrides)
        _COMPOSED[overrides] = (cfg, HydraConfig.instance().cfg)
    cfg, hydra = _COMPOSED[overrides]
    HydraConfig.instance().cfg = hydra  # read-only (set_config made it so): shared, not copied
    return copy.deepcopy(cfg)


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





def fits_a_refusal(message: str) -> bool:
    """A refusal's message, as the entry wrapper prints it: at most 2 lines of at most 160 characters."""
    from digits_bench.errors import ERROR_PREFIX, LINE_WIDTH

    lines = f"{ERROR_PREFIX}{message}".splitlines()
    return len(lines) <= 2 and all(len(line) <= LINE_WIDTH for line in lines)


__all__ = ["TINY", "all_runs", "client_for", "compose", "fits_a_refusal", "make_client", "run_cli"]


"""Processes that log one dataset to their own runs at the same instant, released together by a barrier (for
tests/test_reliability.py): MLflow checks for a dataset, then inserts it, so all but one insert can hit its
unique key. Spawned, so each opens its own connection to the store."""
from __future__ import annotations

from typing import Any


def log_together(uri: str, cfg_yaml: str, rounds: list[tuple[str, ...]], index: int, barrier: Any, errors: Any) -> None:
    """For each round (one run id per process, all in a new experiment), wait for the others, then log_dataset."""
    from mlflow.tracking import MlflowClient
    from omegaconf import OmegaConf

    from digits_bench.tracking.runs import log_dataset

    client = MlflowClient(uri)
    cfg = OmegaConf.create(cfg_yaml)
    for run_ids in rounds:
        barrier.wait(timeout=60)
        try:
            log_dataset(client, run_ids[index], cfg, "training")
        except Exception as err:  # what the test counts: a lost input
            errors.put(f"{type(err).__name__}: {str(err).splitlines()[0][:200]}")

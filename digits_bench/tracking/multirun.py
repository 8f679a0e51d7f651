"""Hydra multirun (`python -m digits_bench -m model=lenet,mlp_128_64`): its jobs grouped under one MLflow parent run.

A Hydra callback (registered in conf/config.yaml under hydra.callbacks) opens the
parent when the multirun starts and closes it when it ends, through the same
`parent_run` code as a sweep. Each job finds the parent in DIGITS_BENCH_PARENT_RUN_ID,
which also reaches jobs that launcher plugins start in other processes.
Kept import-light: Hydra instantiates the callback on every run, single runs included.
"""
from __future__ import annotations

import atexit
import os
import signal
import sys
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

PARENT_ENV = "DIGITS_BENCH_PARENT_RUN_ID"
_failed_codes: list[int] = []  # exit statuses of this process's jobs that failed with a one-line error


def job_failed_in_multirun(code: int) -> bool:
    """Record a job that ended with a one-line error (already printed); True inside a multirun, whose other
    jobs then still run, its parent run ends FAILED and its exit status is `code`. False in a single run."""
    from hydra.types import RunMode

    if not (HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN):
        return False
    _failed_codes.append(code)
    return True


def job_tags() -> dict[str, str]:
    """Tags that nest this job's run under the multirun's parent; none outside a multirun."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return {}
    from digits_bench.tracking.parent_run import child_tags

    tags = child_tags(parent) | {"multirun.role": "job"}
    if HydraConfig.initialized() and HydraConfig.get().job.get("num") is not None:
        tags["multirun.job"] = str(HydraConfig.get().job.num)
    return tags


class GroupMultirun(Callback):
    """Open a parent run at multirun start; close it FINISHED when every job completed, FAILED or KILLED otherwise."""

    def __init__(self) -> None:
        self.client: Any = None
        self.parent: str | None = None
        self.failed: list[str] = []
        self.interrupted = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from digits_bench.tracking.parent_run import open_parent
        from digits_bench.tracking import make_client

        overrides = " ".join(OmegaConf.to_container(config.hydra.overrides.task))  # type: ignore[arg-type]
        self.client = make_client(config)
        tags = {"multirun.role": "parent", "multirun.overrides": overrides[:5000]}
        self.parent = open_parent(self.client, config, f"multirun:{overrides}"[:250], tags)
        os.environ[PARENT_ENV] = self.parent
        atexit.register(self._close_if_open)  # a failed job ends Hydra's multirun before on_multirun_end
        for signum in (signal.SIGINT, signal.SIGTERM):  # so the parent of a stopped multirun reads KILLED
            signal.signal(signum, self._stop)
        print(f"multirun: MLflow parent run {self.parent} groups its jobs", flush=True)

    def _stop(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        raise KeyboardInterrupt

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._codes_before = len(_failed_codes)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        job = f"#{config.hydra.job.num}"
        if job_return.status == JobStatus.FAILED:
            error = job_return._return_value  # the job's exception (its .return_value would raise it)
            why = f"{type(error).__name__}: {str(error)[:300]}"
        elif len(_failed_codes) > getattr(self, "_codes_before", 0):
            why = f"exit status {_failed_codes[-1]}, error above"
        else:
            return
        self.failed.append(job)
        print(f"multirun: job {job} failed ({why}); the other jobs go on", file=sys.stderr, flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._close("FAILED" if self.failed else "FINISHED")
        if self.failed:
            print(f"multirun: {len(self.failed)} job(s) failed: {', '.join(self.failed)}", file=sys.stderr, flush=True)
            sys.exit(max(_failed_codes, default=1))

    def _close_if_open(self) -> None:
        if self.parent is None:
            return
        from digits_bench.tracking.parent_run import outcome

        self._close("KILLED" if self.interrupted else outcome(self.client, self.parent))

    def _close(self, status: str) -> None:
        from digits_bench.tracking.parent_run import close_parent

        if self.parent is None:
            return
        parent, self.parent = self.parent, None
        os.environ.pop(PARENT_ENV, None)
        close_parent(self.client, parent, status, {"multirun.failed_jobs": str(len(self.failed))} if self.failed else None)

"""Hydra multirun (`python -m digits_bench -m model=lenet,mlp_128_64`): its jobs grouped under one MLflow parent run.

A Hydra callback (registered in conf/config.yaml under hydra.callbacks) opens the parent when
the multirun starts and closes it when it ends, through `tracking.runs` as a sweep's parent is.
The parent is handed down to the jobs (`tracking.handoff`), which reaches jobs that launcher
plugins start in other processes too, and each job's run nests under it.
Kept import-light: Hydra instantiates the callback on every run, single runs included.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from contextlib import ExitStack
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from digits_bench.names import Metric, Tag, run_name

SUMMARISED = (Metric.VAL_ACC_BEST, Metric.TEST_ACC)  # what a multirun's parent sums up of its jobs
_failed_codes: list[int] = []  # exit statuses of this process's jobs that failed with a one-line error
_open: list["GroupMultirun"] = []  # the multirun this process launches, while its parent run is open


def close_open() -> None:
    """Close the parent of a multirun that ended before its end callback (a job that raised, a stop), so its failed
    jobs are named before the command's own last line; the entry point calls it as Hydra's app returns or raises."""
    while _open:
        _open.pop().close_early()


def job_failed_in_multirun(code: int) -> bool:
    """Record a job that ended with a one-line error (already printed); True inside a multirun, whose other
    jobs then still run, its parent run ends FAILED and its exit status is `code`. False in a single run."""
    from hydra.types import RunMode

    if not (HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN):
        return False
    _failed_codes.append(code)
    return True


def swept_keys(overrides: list[str]) -> tuple[str, ...]:
    """The keys a multirun varies (`model=lenet,mlp_128_64`, `optimizer.lr=range(...)`), as its jobs' params name them."""
    keys = []
    for override in overrides:
        key, _, value = override.partition("=")
        if "," in value or value.startswith(("range(", "choice(", "interval(", "glob(")):
            keys.append(key.lstrip("+~"))
    return tuple(keys)


def job_tags() -> dict[str, str]:
    """Tags that mark this job's run as a multirun's job (the run nests under the parent by itself); none outside one."""
    from digits_bench.tracking.handoff import inherited

    if not inherited("parent"):
        return {}
    tags = {Tag.MULTIRUN_ROLE: "job"}
    if HydraConfig.initialized() and HydraConfig.get().job.get("num") is not None:
        tags[Tag.MULTIRUN_JOB] = str(HydraConfig.get().job.num)
    return tags


FAILED_JOB = "multirun.failed."  # + the job's number: a tag on the parent, set by the job wherever it ran, saying why


def failed_jobs(tags: dict[str, str]) -> dict[str, str]:
    """The parent's failed jobs ("#1") and why each failed, in job order, from its tags."""
    jobs = {key.removeprefix(FAILED_JOB): why for key, why in tags.items() if key.startswith(FAILED_JOB)}
    return {f"#{num}": jobs[num] for num in sorted(jobs, key=lambda num: int(num) if num.isdigit() else -1)}


def exit_status(whys: list[str]) -> int:
    """The multirun's exit status: the highest of its failed jobs' (1 where a job ended by an exception)."""
    return max((int(found.group(1)) for why in whys if (found := re.search(r"exit status (\d+)", why))), default=1)


class GroupMultirun(Callback):
    """Open a parent run at multirun start; close it FINISHED when every job completed, FAILED or KILLED otherwise.

    A launcher plugin may run the jobs in other processes or on other machines (submitit: conf/hydra/launcher/),
    pickling this callback into each: a job reports its failure on the parent run, where the multirun's end finds it."""

    def __init__(self) -> None:
        self.client: Any = None
        self.parent: str | None = None
        self.elsewhere: str | None = None  # the submitit folder of jobs a launcher plugin runs in other processes
        self._group = ExitStack()  # holds the `runs.parent` block from the multirun's start to its end

    def __getstate__(self) -> dict[str, Any]:  # what a job launched elsewhere needs: the parent's id
        return {"parent": self.parent}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]
        self.parent = state["parent"]

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from digits_bench import signals
        from digits_bench.launcher import stop_local_jobs
        from digits_bench.tracking import runs, views
        from digits_bench.tracking.store import make_client

        typed: list[str] = OmegaConf.to_container(config.hydra.overrides.task)  # type: ignore[assignment]
        self.client = make_client(config)
        tags = {Tag.MULTIRUN_ROLE: "parent", "multirun.overrides": " ".join(typed)[:5000]}
        group = self._group.enter_context(runs.parent(self.client, config, run_name("multirun:", typed), tags, hand_down=True))

        def summarise() -> None:  # the jobs' summary goes on the parent as metrics and params, not tags
            runs.summarise_children(self.client, group.run_id, SUMMARISED)

        group.closing.append(summarise)
        self.parent, self.group = group.run_id, group
        _open.append(self)  # a failed job, or a stop, ends Hydra's multirun before on_multirun_end: `close_open` then
        signals.install(stop_local_jobs)  # for the whole multirun: a stop between jobs, or of jobs launched here, too
        link = views.show_children(self.client, self.parent, SUMMARISED, swept_keys(typed))
        print(f"multirun: MLflow parent run {self.parent} groups its jobs: {link}", flush=True)
        self.elsewhere = config.hydra.launcher.get("submitit_folder")  # None: Hydra's basic launcher, the jobs run here
        if self.elsewhere:
            print(f"multirun: its jobs run through submitit; their output: {Path(self.elsewhere).parent}/<job id>/", flush=True)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from digits_bench import launcher, signals

        self._codes_before = len(_failed_codes)
        if launcher.submitted_job():
            signals.install()  # SIGTERM (scancel, or the multirun stopped) stops this job, its run KILLED

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """Report a failed job of a multirun, here and on the parent run; a single run (Hydra calls this for it too,
        without a job number) has none."""
        if self.parent is None:
            return
        from digits_bench.launcher import job_log
        from digits_bench.tracking.store import make_client

        num = OmegaConf.select(config, "hydra.job.num", default="?")
        if job_return.status == JobStatus.FAILED:
            error = job_return._return_value  # the job's exception (its .return_value would raise it)
            why = f"{type(error).__name__}: {str(error)[:300]}"
        elif len(_failed_codes) > getattr(self, "_codes_before", 0):
            log = job_log()
            why = f"exit status {_failed_codes[-1]}, " + (f"its log: {log}" if log else "error above")
        else:
            return
        print(f"multirun: job #{num} failed ({why}); the other jobs go on", file=sys.stderr, flush=True)
        make_client(config).set_tag(self.parent, f"{FAILED_JOB}{num}", why)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from digits_bench.errors import RunFailed

        failed = self._failed_jobs()
        if self.parent and self.elsewhere:  # their summaries went to their logs: one line each here
            from digits_bench.tracking import runs

            for job in sorted(runs.children(self.client, self.parent), key=lambda r: int(r.data.tags.get(Tag.MULTIRUN_JOB, -1))):
                scores = "  ".join(f"{key} {job.data.metrics[key]:.4f}" for key in SUMMARISED if key in job.data.metrics)
                print(f"multirun: job #{job.data.tags.get(Tag.MULTIRUN_JOB)} {job.info.status}  {scores}  run {job.info.run_id}", flush=True)
        self._close(RunFailed(f"{len(failed)} job(s) failed: {', '.join(failed)}") if failed else None, len(failed))
        _open.clear()
        if failed:
            sys.exit(exit_status(list(failed.values())))

    def _failed_jobs(self) -> dict[str, str]:
        """The jobs that reported a failure on the parent, each printed with why (the multirun's end, or its stop)."""
        if self.parent is None:
            return {}
        failed = failed_jobs(self.client.get_run(self.parent).data.tags)
        if failed:
            listed = "; ".join(f"{job} ({why})" for job, why in failed.items())
            print(f"multirun: {len(failed)} job(s) failed: {listed}", file=sys.stderr, flush=True)
        return failed

    def close_early(self) -> None:
        """When the multirun ended early: KILLED when it was stopped (a signal, or a job of it was), else FAILED."""
        if self.parent is None:
            return
        from digits_bench.errors import KILLED, RunFailed
        from digits_bench import signals
        from digits_bench.tracking import runs

        stopped = signals.received() or any(r.info.status == KILLED for r in runs.children(self.client, self.parent))
        failed = self._failed_jobs()
        self._close(KeyboardInterrupt() if stopped else RunFailed("the multirun ended before its last job"), len(failed))

    def _close(self, error: BaseException | None, failed: int = 0) -> None:
        """End the parent's block: its finished jobs summed up on it (what they share, mean ± std and best), then
        closed by `error` (None: every job completed)."""
        if self.parent is None:
            return
        self.parent = None
        if failed:
            self.group.end_tags["multirun.failed_jobs"] = str(failed)
        self.group.failure = error
        self._group.close()

"""Jobs submitted through submitit, as conf/hydra/launcher/ sets them up: a multirun's jobs (Hydra's submitit launcher
reads those presets itself) and a sweep's workers (`sweep --launcher NAME --workers N`, built here from the same preset).

`local` runs each job as a process of its own on this machine; `slurm` submits each as a SLURM job. Either way the
job inherits this process's environment, so what `tracking.handoff` passes down (the parent run, the study's
storage) reaches it. A job ends KILLED when it is stopped: SLURM's scancel sends SIGTERM, and a stop of the process
that submitted local jobs is passed on to them (`stop_local_jobs`).
"""
from __future__ import annotations

import signal
from typing import Any

from omegaconf import OmegaConf

PRESETS = ("local", "slurm")  # conf/hydra/launcher/<name>.yaml
LOCAL_CONTROLLER = "submitit.local._local"  # the process submitit's local executor starts for each job
STOP_WAIT_S = 60.0  # how long a stopped local job may take to close its run


def executor(name: str, job_name: str, overrides: list[str] | None = None) -> Any:
    """A submitit executor for `name`'s preset (with `hydra.launcher.*` overrides), as Hydra's submitit launcher
    builds one from the same config: the folder and the timeout count as the executor's own, the rest as resources."""
    import submitit

    from digits_bench.config import compose_config

    composed = compose_config([f"hydra/launcher={name}", f"hydra.job.name={job_name}", *(overrides or [])], keep_hydra=True)
    params: dict[str, Any] = OmegaConf.to_container(composed.hydra.launcher, resolve=True)  # type: ignore[assignment]
    cluster = "local" if str(params.pop("_target_")).endswith(".LocalLauncher") else "slurm"
    made = submitit.AutoExecutor(folder=params.pop("submitit_folder"), cluster=cluster,
                                 **({"slurm_max_num_timeout": params.pop("max_num_timeout")} if "max_num_timeout" in params else {}))
    shared = {"timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes", "stderr_to_stdout"}
    made.update_parameters(**{key if key in shared | {"name"} else f"{cluster}_{key}": value for key, value in params.items()})
    return made


def stop_local_jobs(wait_s: float = STOP_WAIT_S) -> None:
    """Pass a stop on to the local jobs this process submitted: SIGTERM to each job's controller (which passes it to
    the job, whose run then ends KILLED), then wait for them to end, so no job outlives the command."""
    import psutil

    jobs = []
    for child in psutil.Process().children():
        try:
            if LOCAL_CONTROLLER in child.cmdline():
                child.send_signal(signal.SIGTERM)
                jobs.append(child)
        except psutil.Error:  # ended meanwhile
            pass
    psutil.wait_procs(jobs, timeout=wait_s)


def submitted_job() -> bool:
    """Whether this process is a job submitit started. Its SIGTERM handler ignores the signal (SLURM's warning
    before a pre-emption); a job of ours stops on it, as any command does."""
    import os

    return "SUBMITIT_EXECUTOR" in os.environ


def job_log() -> str | None:
    """The file this submitted job's errors go to (a user of the submitting console reads them there), else None."""
    if not submitted_job():
        return None
    import submitit

    return str(submitit.JobEnvironment().paths.stderr)

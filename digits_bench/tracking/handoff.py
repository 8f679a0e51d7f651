"""What a process hands down to the processes it starts: the run a DDP rank joins, the parent a multirun job or
sweep worker nests under, the Optuna storage a sweep's workers share.

One environment variable carries it (not argv: `ps` shows argv, and a storage URL may hold a password), so it
reaches processes that Lightning, torchrun or a Hydra launcher plugin start as well as our own.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Iterator, Literal

VARIABLE = "DIGITS_BENCH_RUNS"  # JSON: {"run": ..., "parent": ..., "storage": ...}
Role = Literal["run", "parent", "storage"]


def _read() -> dict[str, str]:
    try:
        values = json.loads(os.environ.get(VARIABLE) or "{}")
    except ValueError:
        return {}
    return values if isinstance(values, dict) else {}


def inherited(role: Role) -> str | None:
    """The run id (or storage URL) the process that started this one handed down as `role`, or None."""
    return _read().get(role)


def pass_down(role: Role, value: str | None) -> None:
    """Hand `value` down as `role` to the processes this one starts from now on; None stops handing it."""
    values = _read()
    if value is None:
        values.pop(role, None)
    else:
        values[role] = value
    if values:
        os.environ[VARIABLE] = json.dumps(values)
    else:
        os.environ.pop(VARIABLE, None)


@contextmanager
def passing_down(**values: str) -> Iterator[None]:
    """Hand `values` (role=value) down to the processes started inside the block, and stop when it ends."""
    for role, value in values.items():
        pass_down(role, value)  # type: ignore[arg-type]
    try:
        yield
    finally:
        for role in values:
            pass_down(role, None)  # type: ignore[arg-type]


# torchrun and SLURM's srun start every process of a job themselves, on every node: none of them is started by rank 0,
# so the run id cannot travel in the environment. They meet in a key-value store (torch.distributed's TCPStore): under
# torchrun its agent's store, which every worker reaches through MASTER_ADDR/MASTER_PORT; under srun one that rank 0
# hosts on the first node of the job. Rank 0 publishes the run there, the others wait for it.
JOIN_SECONDS = 120  # how long a rank waits for rank 0's run before it gives up
MEETING_PORT = "DIGITS_BENCH_MEETING_PORT"  # srun: the port rank 0's store listens on (default: from the job id)
_hosted: list[object] = []  # rank 0's store under srun, open as long as the process


def _srun_job() -> bool:
    """A job of several tasks that srun started (as Lightning's SLURMEnvironment detects it), not under torchrun."""
    return (int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ
            and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive") and "TORCHELASTIC_RUN_ID" not in os.environ)


def job_rank() -> int | None:
    """This process's global rank in a job of several processes that torchrun or srun started, else None."""
    if os.environ.get("TORCHELASTIC_RUN_ID") is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return int(os.environ.get("RANK", "0"))
    return int(os.environ["SLURM_PROCID"]) if _srun_job() else None


def _meeting_store():  # -> torch.distributed.TCPStore
    from datetime import timedelta

    from torch.distributed import TCPStore

    timeout = timedelta(seconds=JOIN_SECONDS)
    if not _srun_job():
        return TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False, timeout=timeout)
    from lightning.fabric.plugins.environments import SLURMEnvironment

    host = os.environ.get("MASTER_ADDR") or SLURMEnvironment.resolve_root_node_address(os.environ.get("SLURM_NODELIST", "127.0.0.1"))
    port = int(os.environ.get(MEETING_PORT) or 10000 + int(os.environ.get("SLURM_JOB_ID", "0")[-4:]) % 5000)  # Lightning's: 15000+
    if job_rank() != 0:
        return TCPStore(host, port, is_master=False, timeout=timeout)
    if not _hosted:
        _hosted.append(TCPStore(host, port, is_master=True, wait_for_workers=False, timeout=timeout))
    return _hosted[0]


def _key() -> str:
    if _srun_job():
        job = f"slurm-{os.environ.get('SLURM_JOB_ID')}.{os.environ.get('SLURM_STEP_ID', '0')}"
        return f"digits_bench/run/{job}/{os.environ.get('SLURM_RESTART_COUNT', '0')}"
    return f"digits_bench/run/{os.environ.get('TORCHELASTIC_RUN_ID')}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"


def publish_to_ranks(run_id: str) -> None:
    """Rank 0 of a torchrun or srun job: the run every other rank joins ("" when it could not open one)."""
    _meeting_store().set(_key(), run_id)


def run_of_rank_zero() -> str:
    """Another rank of a torchrun or srun job: the run rank 0 opened, waited for; RunFailed when rank 0 has none."""
    from digits_bench.errors import RunFailed

    try:
        run_id = _meeting_store().get(_key()).decode()
    except Exception as err:  # noqa: BLE001 - the store's timeout or a lost connection: rank 0 is gone
        raise RunFailed(f"rank {job_rank()}: rank 0 opened no MLflow run within {JOIN_SECONDS} s "
                        f"({type(err).__name__}); its own error says why") from None
    if not run_id:
        raise RunFailed(f"rank {job_rank()}: rank 0 could not open the MLflow run; its error says why")
    return run_id

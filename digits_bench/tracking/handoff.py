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


# torchrun starts every process of a job itself, on every node: none of them is started by rank 0, so the run id
# cannot travel in the environment. They can all reach torchrun's own key-value store (its agent store, which
# torch.distributed's env:// rendezvous connects to as well): rank 0 publishes the run there, the others wait for it.
JOIN_SECONDS = 120  # how long a rank waits for rank 0's run before it gives up


def torchrun_rank() -> int | None:
    """This process's global rank in a torchrun job with more than one process, else None."""
    if os.environ.get("TORCHELASTIC_RUN_ID") is None or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return None
    return int(os.environ.get("RANK", "0"))


def _agent_store():  # -> torch.distributed.TCPStore
    from datetime import timedelta

    from torch.distributed import TCPStore

    return TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                    timeout=timedelta(seconds=JOIN_SECONDS))


def _key() -> str:
    return f"digits_bench/run/{os.environ.get('TORCHELASTIC_RUN_ID')}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"


def publish_to_ranks(run_id: str) -> None:
    """Rank 0 of a torchrun job: the run every other rank joins ("" when it could not open one)."""
    _agent_store().set(_key(), run_id)


def run_of_rank_zero() -> str:
    """Another rank of a torchrun job: the run rank 0 opened, waited for; RunFailed when rank 0 has none."""
    from digits_bench.errors import RunFailed

    try:
        run_id = _agent_store().get(_key()).decode()
    except Exception as err:  # noqa: BLE001 - the store's timeout or a lost connection: rank 0 is gone
        raise RunFailed(f"rank {torchrun_rank()}: rank 0 opened no MLflow run within {JOIN_SECONDS} s "
                        f"({type(err).__name__}); its own error says why") from None
    if not run_id:
        raise RunFailed(f"rank {torchrun_rank()}: rank 0 could not open the MLflow run; its error says why")
    return run_id

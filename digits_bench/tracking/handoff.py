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

"""A full or read-only disk, or a store that stops answering, in the middle of a run: one line that says what to do."""
from __future__ import annotations

import errno
from contextlib import contextmanager
from typing import Iterator

from omegaconf import DictConfig

from digits_bench.errors import UNWRITABLE, TrackingError, disk_full
from digits_bench.names import LAST_CHECKPOINT
from digits_bench.tracking.store import STORE_ERRORS, checkpoint_folder, store_error, tracking_uri


def resume_hint(cfg: DictConfig, run_id: str) -> str:
    """`resume=` only works from a saved epoch (last.ckpt); otherwise say that the run must start again."""
    last = checkpoint_folder(cfg, run_id) / LAST_CHECKPOINT
    if last.is_file():
        return f"then continue with resume={run_id}"
    return f"then start again (run {run_id} saved no epoch to resume from)"


@contextmanager
def store_faults(cfg: DictConfig, run_id: str) -> Iterator[None]:
    """Turn write failures during a run into a TrackingError naming the file, the cause and the next step."""
    try:
        yield
    except OSError as err:
        where = err.filename or "a file"
        if err.errno == errno.ENOSPC:
            raise TrackingError(disk_full(where, resume_hint(cfg, run_id))) from None
        if err.errno in UNWRITABLE:
            raise TrackingError(f"cannot write {where} ({err.strerror}); make it writable, "
                                f"or set DIGITS_BENCH_STORE / DIGITS_BENCH_CHECKPOINTS to a writable folder") from None
        raise
    except STORE_ERRORS as err:  # OSError is handled above: what is left is the store's own
        raise TrackingError(f"{store_error(tracking_uri(cfg), err)}; {resume_hint(cfg, run_id)}") from None

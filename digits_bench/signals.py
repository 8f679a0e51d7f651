"""SIGINT and SIGTERM, handled one way in every process of the harness.

A signal stops whatever was registered to stop with this process (the ranks a multi-process
run launched), is remembered, and becomes KeyboardInterrupt: the run it lands in is closed
KILLED (`digits_bench.errors.outcome`) and the command exits 130 (SIGTERM: 143), never leaving a
run RUNNING. An interrupt that lands where Python swallows exceptions (a finaliser: "Exception
ignored in ...") is raised again when the block it arrived in ends: it is never lost, and Python's report of
the swallowing (a traceback of several lines) is not printed: the interrupt's own line says it all.
"""
from __future__ import annotations

import signal
import sys
from contextlib import contextmanager
from types import FrameType
from typing import Any, Callable, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_before_raising: list[Callable[[], None]] = []
_received: list[int] = []


class Stopped(KeyboardInterrupt):
    """The KeyboardInterrupt a signal becomes, with the signal: SIGTERM ends a command 143, SIGINT 130."""

    def __init__(self, signum: int) -> None:
        super().__init__()
        self.signum = signum


def _handle(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    for stop in list(_before_raising):
        stop()
    raise Stopped(signum)


def install(before_raising: Callable[[], None] | None = None) -> dict[int, Any]:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt in this process, after `before_raising` (kept until
    `forget`); returns the handlers it replaced. Outside the main thread Python allows no handler: nothing."""
    try:
        previous = {signum: signal.signal(signum, _handle) for signum in SIGNALS}
    except ValueError:  # not the main thread
        return {}
    if before_raising is not None:
        _before_raising.append(before_raising)
    return previous


def restore(previous: dict[int, Any]) -> None:
    """Put back the handlers `install` replaced."""
    for signum, handler in previous.items():
        if handler is not None:  # None: set outside Python, nothing to put back
            signal.signal(signum, handler)


def forget(before_raising: Callable[[], None]) -> None:
    """No longer run `before_raising` on a signal (what it stops is gone)."""
    if before_raising in _before_raising:
        _before_raising.remove(before_raising)


def _quiet_when_stopped(previous: Callable[[Any], None]) -> Callable[[Any], None]:
    """An unraisable hook that keeps a swallowed Stopped quiet (it is raised again at its block's end) and leaves
    every other unraisable exception to `previous`."""
    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, Stopped):
            previous(unraisable)

    return hook


@contextmanager
def interrupts(before_raising: Callable[[], None] | None = None) -> Iterator[None]:
    """The handler while the block runs; the previous ones after it. A signal that arrived in the block and
    was swallowed on the way is raised at its end."""
    previous = install(before_raising)
    arrived = len(_received)
    unraisable = sys.unraisablehook
    sys.unraisablehook = _quiet_when_stopped(unraisable)
    try:
        yield
        if len(_received) > arrived:
            raise Stopped(_received[-1])
    finally:
        sys.unraisablehook = unraisable
        restore(previous)
        if before_raising is not None:
            forget(before_raising)


def last() -> int | None:
    """The last signal this process received through this handler, if any."""
    return _received[-1] if _received else None


def received() -> bool:
    """Whether this process was stopped by SIGINT or SIGTERM (through this handler)."""
    return bool(_received)

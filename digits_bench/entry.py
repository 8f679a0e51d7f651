"""How every command starts and ends: each verb's main is wrapped by `command`.

It sets the console up (`setup_console`), runs the verb, and ends it as `digits_bench.errors.outcome`
says: an expected error is one line on stderr and its exit code (2 bad input or an unusable store,
data or disk; 1 a failed run or input; 130 interrupted); a bug keeps its traceback. argparse's own
usage errors (exit 2) pass through as argparse made them.
"""
from __future__ import annotations

import functools
import os
import sys
from typing import Callable, Mapping

from digits_bench.console import setup_console
from digits_bench.errors import ERROR_PREFIX, EXIT_FAILED, outcome
from digits_bench.redaction import redacted

Main = Callable[..., "int | None"]


def error_line(message: str) -> None:
    """One error a user reads on stderr: the command's end, or one failed item among many (an image)."""
    print(f"{ERROR_PREFIX}{redacted(message)}", file=sys.stderr, flush=True)


def _end(error: BaseException) -> int:
    """Print `error` as its one line and return its exit code; a bug (no message in the policy) is re-raised."""
    result = outcome(error)
    if result.message is None:
        raise error
    hint = str(error) if isinstance(error, KeyboardInterrupt) else ""  # an interrupt may say how to resume
    error_line(f"{result.message}; {hint}" if hint else result.message)
    return result.exit_code


def command(main: Main | None = None, *, quiet: Mapping[str, int] | None = None) -> Callable[..., int]:
    """Decorate a verb's main (`@command` or `@command(quiet={logger: level})`): it then sets the console up,
    and returns an exit code whatever happens (tests call it in-process; `__main__` passes it to sys.exit)."""

    def wrap(run: Main) -> Callable[..., int]:
        @functools.wraps(run)
        def wrapped(*args: object, **kwargs: object) -> int:
            setup_console(quiet)
            try:
                code = run(*args, **kwargs)
            except BrokenPipeError:  # `... | head`: the reader left; say nothing more
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return EXIT_FAILED
            except BaseException as error:  # every end goes through the one policy; argparse's exit passes
                return _end(error)
            return code or 0

        return wrapped

    return wrap if main is None else wrap(main)

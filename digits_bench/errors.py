"""The harness's errors and the one policy that says how each ends a run and a command.

Every CLI verb goes through `digits_bench.entry`, which prints an error as one line on stderr and
exits with `outcome(error).exit_code`; every MLflow run is closed by `digits_bench.tracking.runs`
with `outcome(error).status`. Kept import-light on purpose: the CLI fails on bad input in a second.

Exit codes (docs/faults.md): 0 done, 1 a run or an input failed, 2 bad input or an unusable
store, data or disk (nothing to fix in the code), 130 interrupted by Ctrl-C (SIGINT), 143 stopped by SIGTERM.
"""
from __future__ import annotations

import difflib
import errno
import os
import re
from dataclasses import dataclass
from typing import Sequence

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C'd command
EXIT_TERMINATED = 143  # 128 + SIGTERM
# what the other processes of a multi-process run see when one of them is stopped (gloo's and NCCL's words)
PEER_LOST = ("Connection closed by peer", "Connection reset by peer", "NCCL communicator was aborted")

FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"  # MLflow's RunStatus names

ERROR_PREFIX = "digits_bench: error: "  # how the entry wrapper prints an error's one line
LINE_WIDTH = 160  # a refusal reads on one screen line: prefix and message, at most this many characters


def _tokens(word: str) -> set[str]:
    return set(re.findall(r"[a-z]+|\d+", word.lower()))


def nearest(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate a typo most likely meant, or None: difflib's similarity, plus the words and numbers they share
    and the length of their common start (`mlp128` means `mlp_128_64`, which difflib alone ranks below `mlp_512`)."""
    def score(candidate: str) -> tuple[float, float]:
        ratio = difflib.SequenceMatcher(None, word.lower(), candidate.lower()).ratio()
        tokens, theirs = _tokens(word), _tokens(candidate)
        shared = len(tokens & theirs) / max(len(tokens | theirs), 1)
        start = len(os.path.commonprefix([word.lower(), candidate.lower()])) / max(len(word), 1)
        return ratio + shared + start / 2, ratio

    ranked = sorted(((score(c), c) for c in candidates), reverse=True)
    if not ranked:
        return None
    (best, ratio), candidate = ranked[0]
    return candidate if ratio >= 0.6 or word.lower() == candidate.lower() or best >= 1.2 else None


def fitted(head: str, names: "list[str] | tuple[str, ...]", tail: str = "") -> str:
    """`head` + the names, comma-separated + `tail`, as an error of at most 2 lines of LINE_WIDTH characters: on
    one line where it fits; else `head` and `tail` on the first and the names on the second, as many as fit, then
    `… (+N more)` (a list of every Lightning strategy or every config key is a page)."""
    listed = ", ".join(names)
    if len(ERROR_PREFIX + head + listed + tail) <= LINE_WIDTH:
        return head + listed + tail
    room = LINE_WIDTH - 2
    shown: list[str] = []
    for name in names:
        more = f", … (+{len(names) - len(shown) - 1} more)"
        if len(", ".join([*shown, name])) + len(more) > room:
            break
        shown.append(name)
    rest = "" if len(shown) == len(names) else f", … (+{len(names) - len(shown)} more)"
    return f"{head.rstrip(' :;,')}{tail}:\n  {', '.join(shown)}{rest}"


class DigitsBenchError(Exception):
    """An expected failure: its message is the one line a user sees; `exit_code` is what the command returns."""

    exit_code = EXIT_FAILED
    prefix = ""  # put before the message on the console ("training diverged: ...")


class BadInput(DigitsBenchError):
    """Nothing to fix in the code: a value, a file, the data, the store or the disk; the message says what to do.

    ConfigError: a config value that cannot work (the message names the key). DataError: the dataset is missing
    or corrupt. TrackingError: the MLflow store cannot be opened or written. ModelLoadError: the run,
    experiment, checkpoint or config does not give a model.
    """

    exit_code = EXIT_BAD_INPUT


class ConfigError(BadInput, ValueError): ...
class DataError(BadInput, RuntimeError): ...
class TrackingError(BadInput, RuntimeError): ...
class ModelLoadError(BadInput, RuntimeError): ...


class ImageError(DigitsBenchError, ValueError):
    """One input file cannot be read as digits; the others still are (exit 1 once all are read)."""


class TrainingDiverged(DigitsBenchError, RuntimeError):
    """The loss went NaN or infinite: the run stops and is recorded as FAILED."""

    prefix = "training diverged: "


class RunFailed(DigitsBenchError, RuntimeError):
    """A run, a sweep or a group of runs ended without a result; the message says which and why."""


@dataclass(frozen=True)
class Outcome:
    status: str  # the MLflow run status to close with
    exit_code: int  # what the command returns
    message: str | None  # the one line to print, None when there is nothing to say


UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
FULL_BELOW = 1 << 20  # bytes free under which a failed write is a full disk, whatever the writer called it


def disk_full(where: str, then: str = "then run again") -> str:
    """The one wording of a full disk: what was being written, and what to do once there is space."""
    return f"disk full writing {where}; free space, {then}"


def disk_message(err: OSError) -> str:
    """A file that could not be written: which, why, and what to do."""
    where = err.filename or "a file"
    if err.errno == errno.ENOSPC:
        return disk_full(where)
    if err.errno in UNWRITABLE:
        return (f"cannot write {where} ({err.strerror}); make it writable or point DIGITS_BENCH_STORE / "
                "DIGITS_BENCH_CHECKPOINTS elsewhere")
    return f"cannot write {where} ({err.strerror or err})"


def peer_stopped(error: BaseException) -> bool:
    """Another process of a multi-process run was stopped: the collective this one waited in lost its peer (gloo's
    and NCCL's words, raised here or reported by torch from a spawned rank: ProcessRaisedException), or a spawned
    rank ended by a signal (ProcessExitedException). torch's classes are named, not imported: this stays light."""
    name = type(error).__name__
    if name == "ProcessExitedException":
        return getattr(error, "signal_name", None) is not None
    return (isinstance(error, RuntimeError) or name == "ProcessRaisedException") and any(w in str(error) for w in PEER_LOST)


def outcome(error: BaseException | None) -> Outcome:
    """How something that ended with `error` (None: it succeeded) is recorded and reported: the one status policy."""
    if error is None:
        return Outcome(FINISHED, EXIT_OK, None)
    from digits_bench import signals  # import-light: the signal module only

    if isinstance(error, SystemExit) and isinstance(error.__context__, KeyboardInterrupt):
        error = error.__context__  # Lightning's fit ends Ctrl-C (and SIGTERM) with sys.exit(1): still an interrupt
    elif isinstance(error, SystemExit) and error.code == 1 and signals.received():
        error = KeyboardInterrupt()  # the same, where the interrupt's traceback was lost on the way
    if isinstance(error, KeyboardInterrupt):  # Ctrl-C, and SIGTERM (digits_bench.signals turns both into one)
        terminated = getattr(error, "signum", None) == signals.signal.SIGTERM
        return Outcome(KILLED, EXIT_TERMINATED if terminated else EXIT_INTERRUPTED, "stopped (SIGTERM)" if terminated else "interrupted")
    if peer_stopped(error):  # a scheduler's SIGTERM, unless this process saw the Ctrl-C itself
        interrupted = signals.received() and signals.last() == signals.signal.SIGINT
        return Outcome(KILLED, EXIT_INTERRUPTED if interrupted else EXIT_TERMINATED, "another process of this "
                       "multi-process run was stopped, so the run stopped too; continue it with resume=<its run id>")
    if isinstance(error, SystemExit):
        code = error.code if isinstance(error.code, int) else EXIT_FAILED
        return Outcome(FINISHED if code == 0 else KILLED if code in (EXIT_INTERRUPTED, EXIT_TERMINATED) else FAILED, code, None)
    if type(error).__name__ == "TrialPruned":  # optuna's: a trial stopped on purpose (not imported here)
        return Outcome(KILLED, EXIT_OK, None)
    if isinstance(error, DigitsBenchError):
        return Outcome(FAILED, error.exit_code, f"{error.prefix}{error}")
    if isinstance(error, OSError):
        return Outcome(FAILED, EXIT_BAD_INPUT, disk_message(error))
    return Outcome(FAILED, EXIT_FAILED, None)  # a bug: the traceback is the message

"""The one console set-up, called by every command as it starts (`digits_bench.entry`), never on import.

Our own messages at INFO and everyone else's at WARNING, as bare text; Lightning's through one path,
without its tips and repeats; the warnings that are by design silenced; a verb's own quiet loggers.
Import-light on purpose: a command's `--help` and bad arguments answer in a second.

Lightning gives its loggers their own stderr handlers (`lightning` with an `INFO:` prefix) and,
when the root logger already has a handler at import time (Hydra's), also lets them propagate
there: every message appears twice. `route_lightning_logs()` leaves exactly one path.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from rich.table import Table

# Each by design: preprocessing lives in the LightningModule; the test-only Trainer restores weights without
# the callbacks that wrote the checkpoint; we log per epoch; Lightning's own use of a deprecated torch API;
# Optuna's heartbeats and plots are "experimental" (ExperimentalWarning), and we rely on them knowingly.
IGNORED_WARNINGS = (
    ".*overridden `on_after_batch_transfer`",
    ".*callbacks used to create the checkpoint need to be provided",
    ".*smaller than the logging interval",
    ".*isinstance\\(treespec, LeafSpec\\)` is deprecated",
    ".*(is experimental \\(supported from v|is an experimental feature)",
    "Checkpoint directory .* exists and is not empty",  # a resumed run's own folder
    ".*when logging on epoch level in distributed setting",  # times and rates are rank 0's own clock, by design
)
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")
# where Lightning's rank_zero_info() records are created (whichever module imported last sets it; mlflow.pytorch
# imports the standalone `pytorch_lightning` package when it is installed, as lightning 2.6 installs it)
RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                     "pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                     "lightning_utilities.core.rank_zero")
OWN_HANDLER = "digits_bench.console"
_DEFERRED: dict[str, int] = {}  # a command's levels for Lightning's loggers, until Lightning is imported (which resets them)


def setup_console(quiet: Mapping[str, int] | None = None) -> None:
    """Set up logging, warnings and Lightning's output for a command; idempotent.

    `quiet` maps logger names to a higher level for this command (a sweep's per-trial chatter). Lightning,
    Optuna and MLflow set their own logger's level when first imported, so the package of each name is
    imported first: the level set here is the one that stays.
    """
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # under Hydra, its job_logging already did
    logging.getLogger("digits_bench").setLevel(logging.INFO)
    # MLflow's own handler would print "Creating initial MLflow database tables..." on a new store: it reads
    # this when imported (here, and in the processes a command starts), or it was imported already (a test)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # nor its progress bars for each artifact a report or a resume reads, nor its "View run at" lines: ours say where
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if "mlflow" in sys.modules:
        logging.getLogger("mlflow").setLevel(os.environ["MLFLOW_LOGGING_LEVEL"].upper())
    for pattern in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name, level in (quiet or {}).items():
        package = name.partition(".")[0]
        if package == "lightning" and package not in sys.modules:  # seconds to import: bad input fails first,
            _DEFERRED[name] = level  # and route_lightning_logs() sets these once training has imported it
            continue
        importlib.import_module(package)
        logging.getLogger(name).setLevel(level)
    route_lightning_logs()


# the test Trainer loading the best checkpoint, which the run's summary names; the accelerators Lightning found,
# which the run's first line names (the one in use); that the last epoch was reached, which its line says; that
# Ctrl-C reached it (after a blank line), which our resume hint and the command's error line say
RESTORE_NOISE = ("Restoring states from the checkpoint path", "Loaded model weights from the checkpoint",
                 "GPU available:", "TPU available:", "HPU available:", "`Trainer.fit` stopped: `max_epochs=",
                 "Detected KeyboardInterrupt, attempting graceful shutdown")


class LightningNoise(logging.Filter):
    """Drops Lightning's advertisements ("💡 Tip: ... try installing litlogger / litmodels"), its lines about
    restoring the checkpoint the test reads and about the accelerators it found, and the repeats of an info
    line already shown (the test Trainer's)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Tip:" in message or message.lstrip().startswith(RESTORE_NOISE):
            return False
        if record.levelno > logging.INFO:
            return True
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def route_lightning_logs() -> None:
    """One handler for Lightning's messages, plain text, tips and repeats dropped; idempotent.

    With a configured root logger (every command, through setup_console) Lightning's messages
    propagate to it and nowhere else; without one (a library caller) the `lightning` logger
    keeps one plain stderr handler of ours, as Lightning would print them.
    """
    for name in RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, LightningNoise) for f in logger.filters):
            logger.addFilter(LightningNoise())
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if h.get_name() != OWN_HANDLER]:
            logger.removeHandler(handler)
        logger.propagate = True
    if "lightning" in sys.modules:
        while _DEFERRED:
            name, level = _DEFERRED.popitem()
            logging.getLogger(name).setLevel(level)
    top = logging.getLogger("lightning")
    own = [h for h in top.handlers if h.get_name() == OWN_HANDLER]
    if logging.getLogger().handlers:
        for handler in own:
            top.removeHandler(handler)
    else:
        if not own:
            handler = logging.StreamHandler(sys.stderr)
            handler.set_name(OWN_HANDLER)
            handler.setFormatter(logging.Formatter("%(message)s"))
            top.addHandler(handler)
        top.propagate = False


# a table printed into a pipe or a log keeps whole cells: Rich's 80 columns would fold a long file path in two
PIPE_WIDTH = 240


def print_table(table: Table, width: int | None = None) -> None:
    """Print a Rich table: at the terminal's width on a terminal, up to PIPE_WIDTH columns into a pipe or file;
    never wider than `width` when one is given (a summary that must read on any screen)."""
    from rich.console import Console

    console = Console(soft_wrap=False)
    if not console.is_terminal:
        console = Console(soft_wrap=False, width=max(console.width, PIPE_WIDTH))
    if width is not None and console.width > width:
        console = Console(soft_wrap=False, width=width)
    console.print(table)

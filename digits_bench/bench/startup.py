"""The start-up row of `make bench`: what a user waits for that is not training.

A tiny run (`model=linear data.subset=2000 trainer.max_epochs=1`, under 0.1 s of training) on a store that
exists already: its overhead is the command's wall time minus its recorded training time (`time/train_s`):
imports, composing, opening the store, testing, logging the model and figures. And a refusal that needs no
training (`+trainer.fast_dev_run=true`): how long bad input takes to answer. Each in its own process, as a
user types it; the fastest of the repeats and the median.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time

import pandas as pd

from digits_bench.errors import EXIT_BAD_INPUT, RunFailed
from digits_bench.names import Metric

TINY_RUN = ("model=linear", "data.subset=2000", "trainer.max_epochs=1")
REFUSAL = ("+trainer.fast_dev_run=true",)


def _timed(args: tuple[str, ...], store: str, expect: int) -> tuple[float, str]:
    """Wall seconds of `python -m digits_bench ARGS` on `store`, and its stdout."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "digits_bench", *args, f"paths.store_dir={store}"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != expect:
        sys.stderr.write(done.stderr[-2000:])
        raise RunFailed(f"start-up: `{' '.join(args)}` exited {done.returncode}, not {expect}; its output is above")
    return wall, done.stdout


def _train_seconds(store: str, stdout: str) -> float:
    """The run's own training time, as it recorded it (its id is the summary's first word after `run`)."""
    from digits_bench.config import compose_config
    from digits_bench.tracking.store import make_client

    run_id = next(line.split()[1] for line in stdout.splitlines() if line.startswith("run ") and "recipe=" in line)
    return make_client(compose_config([f"paths.store_dir={store}"])).get_run(run_id).data.metrics[Metric.TRAIN_S]


def startup(store: str, repeats: int, warm_up: bool = True) -> pd.DataFrame:
    """One row per measure: fastest and median seconds over `repeats`, after one untimed run creates the store (the
    data's first check, the schema, the experiment and its view, as before a user's second run; `warm_up=False`: the
    caller made the store)."""
    if warm_up:
        _timed(TINY_RUN, store, 0)
    overheads, walls, refusals = [], [], []
    for _ in range(repeats):
        wall, out = _timed(TINY_RUN, store, 0)
        walls.append(wall)
        overheads.append(wall - _train_seconds(store, out))
        refusals.append(_timed(REFUSAL, store, EXIT_BAD_INPUT)[0])
    rows = [(f"tiny run overhead: wall - time/train_s (`{' '.join(TINY_RUN)}`)", overheads),
            (f"tiny run wall (`{' '.join(TINY_RUN)}`)", walls),
            (f"refusal before any import of Lightning (`{' '.join(REFUSAL)}`)", refusals)]
    return pd.DataFrame([{"measure": name, "fastest_s": min(values), "median_s": statistics.median(values),
                          "repeats": len(values)} for name, values in rows])

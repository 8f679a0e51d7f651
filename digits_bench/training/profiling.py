"""`debug=profile` (`trainer.profiler=simple|advanced|pytorch`): Lightning's profiler, its report kept with the run.

Lightning prints a profiler's report when the fit ends: ~200 rows, 200 characters wide, once for the fit and again
for the test. Here the fit's profiler writes its report to a file in the run's folder, the file is logged as the
run's artifact (`profile/`), and the console gets the top rows by total time; the test reads the test set once,
unprofiled.
"""
from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning.pytorch.profilers import AdvancedProfiler, Profiler, PyTorchProfiler, SimpleProfiler

from digits_bench.errors import ConfigError

if TYPE_CHECKING:
    from rich.table import Table

PROFILERS: dict[str, type[Profiler]] = {"simple": SimpleProfiler, "advanced": AdvancedProfiler, "pytorch": PyTorchProfiler}
TOP_ROWS = 15
ARTIFACT_DIR = "profile"


def make_profiler(kind: str | None, folder: Path) -> Profiler | None:
    """The profiler `trainer.profiler` names, writing its report under `folder` instead of the console."""
    if not kind:
        return None
    if kind not in PROFILERS:
        raise ConfigError(f"trainer.profiler must be one of {', '.join(PROFILERS)} (got {kind!r})")
    return PROFILERS[kind](dirpath=folder, filename="profile")


def top_actions(profiler: SimpleProfiler, rows: int = TOP_ROWS) -> Table:
    """The actions that took the most time: total and mean seconds, calls, and share of the fit's wall time."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    wall = time.perf_counter() - profiler.start_time
    totals = sorted(((action, math.fsum(d), len(d)) for action, d in profiler.recorded_durations.items() if d),
                    key=lambda row: row[1], reverse=True)
    table = Table(title=f"profile: top {min(rows, len(totals))} of {len(totals)} actions by total time", title_justify="left",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("action", "total s", "calls", "mean ms", "% of fit"):
        table.add_column(name, justify="left" if name == "action" else "right", no_wrap=True, overflow="ellipsis",
                         max_width=70 if name == "action" else None)
    for action, total, calls in totals[:rows]:  # a callback's action carries its state key: `BestAndLast{'monitor': ...}`
        table.add_row(escape(re.sub(r"\{.*\}", "", action)), f"{total:.3f}", f"{calls:,}", f"{1000 * total / calls:.3f}", f"{100 * total / wall:.1f}")
    return table


def record_profile(client: Any, run_id: str, profiler: Profiler, folder: Path) -> list[Path]:
    """Log the profiler's report files (written as the fit ended) as the run's `profile/` artifacts; print the top
    rows (the simple profiler's). Returns the files logged."""
    from digits_bench.console import print_table

    reports = sorted(p for p in folder.glob("*profile*") if p.is_file())
    for report in reports:
        client.log_artifact(run_id, str(report), ARTIFACT_DIR)
    if isinstance(profiler, SimpleProfiler):
        print_table(top_actions(profiler))
    if reports:
        print(f"the whole report: {', '.join(str(p) for p in reports)} (the run's artifacts: {ARTIFACT_DIR}/)")
    return reports

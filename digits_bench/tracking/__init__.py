"""MLflow tracking: store.py (where runs live), runs.py (how a run is opened and closed), logger.py, model.py,
figures.py, faults.py and multirun.py (what a run records, and how).

The store's most used names are re-exported here on first use, so importing the package loads nothing.
"""
from __future__ import annotations

from typing import Any

_FROM_STORE = ("PROJECT_ROOT", "tracking_uri", "make_client", "device_name", "git_commit")


def __getattr__(name: str) -> Any:
    if name in _FROM_STORE:
        from digits_bench.tracking import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

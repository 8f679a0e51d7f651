"""Where the files that are not Python live: `conf/` (Hydra's configs) and `sweeps/` (the sweep files).

In a checkout (and an editable install of it) they sit beside the package, where the repository keeps them; a
wheel or an sdist installs a copy inside the package, `digits_bench/_packaged/`, which the build makes (setup.py).
"""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent
COPIED = "_packaged"  # the build's copy, inside the package (setup.py copies conf/ and sweeps/ there)


def folder(name: str) -> Path:
    """`name`'s folder: the package's copy when installed from a wheel, else the checkout's."""
    copy = PACKAGE / COPIED / name
    return copy if copy.is_dir() else CHECKOUT / name


def in_checkout() -> bool:
    """Whether this package runs from a checkout of the repository (not a wheel installed elsewhere)."""
    return not (PACKAGE / COPIED).is_dir()

"""`python -m digits_bench.offline_kit`: carry the harness to a GPU machine that cannot reach PyPI.

Such machines (a cluster's GPU nodes, a lent box) usually hold PyTorch, Lightning and
the scientific stack already, but not Hydra, MLflow or Optuna, and cannot download
MNIST. The kit is a folder of wheels built for the target's Python and platform,
holding only what the target lacks (`--have`: its `pip freeze` or a list of names),
plus MNIST's IDX files gzipped (md5-verified on arrival, like every dataset read) and
`install.sh`. On the target, from the repository root:

    . .whl/install.sh && python3 -m digits_bench experiment=best trainer=gpu

The target's own PyTorch and torchvision are always used: their CUDA builds are
gigabytes, and the pins in pyproject.toml are this project's CPU machines'.
"""
from __future__ import annotations

import gzip
import importlib.metadata as metadata
import re
import subprocess
import sys
from pathlib import Path


NEVER_CARRIED = {"torch", "torchvision"}
# Pure-Python packages with no wheel on PyPI: built here once, then found by `pip download`.
SDIST_ONLY = ("antlr4-python3-runtime",)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")


def normalized(name: str) -> str:
    """PEP 503 name: `PyYAML`, `pyyaml` and `py_yaml` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_have(text: str) -> set[str]:
    """Package names from `pip freeze`, `pip list` or a comma/space-separated list of names."""
    names = set()
    for token in re.split(r"[\s,]+", text):
        name = re.split(r"[=<>~!@\[ ]", token, maxsplit=1)[0]
        if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) and not re.fullmatch(r"[\d.]+\w*", name):
            names.add(normalized(name))
    return names - {"package", "version"}


def wheel_name(path: Path) -> str:
    return normalized(path.name.split("-", 1)[0])


def pinned_requirements(have: set[str]) -> list[str]:
    """Our runtime requirements the target lacks, at the versions installed here, so it runs what we tested.

    Those it has are left out before resolving: lightning alone would pull in a CUDA PyTorch.
    """
    pins = []
    for req in metadata.requires("digits_bench") or []:
        if "extra ==" in req:
            continue
        name = normalized(re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0])
        if name not in have | NEVER_CARRIED:
            pins.append(f"{name}=={metadata.version(name)}")
    return pins


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True)


def download_wheels(out: Path, python_version: str, have: set[str]) -> list[Path]:
    """Resolve our requirements for the target, then drop every wheel the target already has."""
    for name in SDIST_ONLY:
        _pip("wheel", "--no-deps", "-w", str(out), f"{name}=={metadata.version(name)}")
    target = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    for platform in PLATFORMS:
        target += ["--platform", platform]
    _pip("download", "-d", str(out), "--find-links", str(out), *target, *pinned_requirements(have))
    kept = []
    for wheel in sorted(out.glob("*.whl")):
        if wheel_name(wheel) in have | NEVER_CARRIED:
            wheel.unlink()
        else:
            kept.append(wheel)
    return kept


def copy_mnist(out: Path) -> None:
    """Gzip the verified IDX files: a sixth of their size, and the data module reads .gz directly."""
    from digits_bench.config import compose_config
    from digits_bench.data.sources import SPLIT_FILES, DatasetSpec, read_verified

    cfg = compose_config()
    spec = DatasetSpec.from_config(cfg.data.dataset)
    (out / "mnist").mkdir()
    for key in SPLIT_FILES:
        blob = read_verified(spec, key)  # raises DataError, saying to run `make data`, when missing or corrupt
        (out / "mnist" / f"{spec.files[key]}.gz").write_bytes(gzip.compress(blob, compresslevel=6, mtime=0))


INSTALL_SH = """\
# Source from the repository root on the target: . {kit}/install.sh
# Installs the kit's wheels beside the target's own packages and puts MNIST where the harness looks. The packages go
# into the kit's own folder (yours): a shared one such as /tmp/... would let another user plant modules there first.
site="$PWD/{kit}/site"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" {kit}/*.whl || return 1
export PYTHONPATH="$site:$PWD${{PYTHONPATH:+:$PYTHONPATH}}"
mkdir -p data/MNIST/raw && cp {kit}/mnist/*.gz data/MNIST/raw/
"""


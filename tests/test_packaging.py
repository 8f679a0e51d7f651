"""Installed like a Python package (README: "Install it as a package"): a regular (not editable) install of the
wheel into a fresh virtual environment, then `digits-bench` from an empty folder, far from the checkout."""
from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from digits_bench import packaged

from .conftest import ROOT


def test_the_checkout_finds_its_configs_and_sweeps_beside_the_package():
    assert packaged.in_checkout() and packaged.folder("conf") == ROOT / "conf" and packaged.folder("sweeps") == ROOT / "sweeps"


@pytest.mark.slow
@pytest.mark.fit
def test_a_wheel_installed_elsewhere_trains_sweeps_and_lists_models_from_any_folder(tmp_path: Path):
    dist, venv, empty, xdg = tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere", tmp_path / "xdg"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                            str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = dist.glob("digits_bench-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # the dependencies this checkout's environment installed, reused: its site-packages on the new one's path (as a
    # plain path entry: the checkout's editable install, a .pth file there, is not read)
    (target_site,) = venv.glob("lib/python*/site-packages")
    (target_site / "dependencies.pth").write_text(site.getsitepackages()[0] + "\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps",
                                "--no-index", "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    empty.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DIGITS_BENCH_", "PYTHON", "VIRTUAL_ENV"))}
    env |= {"PATH": f"{venv / 'bin'}:{env['PATH']}", "XDG_DATA_HOME": str(xdg), "OMP_NUM_THREADS": "1"}

    def user(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["digits-bench", *args], cwd=empty, env=env, capture_output=True, text=True, timeout=300)

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import digits_bench; print(digits_bench.__file__)"],
                           cwd=empty, env=env, capture_output=True, text=True).stdout
    assert where.startswith(str(target_site))  # the wheel's package, not the checkout's
    trained = user("model=linear", "data.subset=2000", "data.val_size=500", "data.test_subset=500", "trainer.max_epochs=1",
                   "tracking.figures=false", "tracking.system_metrics=false", "trainer.enable_progress_bar=false")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert (empty / "mlruns" / "mlflow.db").is_file() and f"store sqlite:///{empty}/mlruns/mlflow.db" in trained.stdout
    assert (xdg / "digits_bench" / "MNIST" / "raw").is_dir()  # the data: one folder per user, said when made
    assert f"creating {xdg}/digits_bench/MNIST/raw for its IDX files" in trained.stdout + trained.stderr
    swept = user("sweep", "mlp", "--n-trials", "1", "data.subset=1000", "data.val_size=500", "trainer.max_epochs=1")
    assert swept.returncode == 0 and "best trial #0" in swept.stdout, swept.stderr[-2000:]  # a sweep by name, packaged
    listed = user("models")
    assert listed.returncode == 0 and "lenet" in listed.stdout
    assert sorted(p.name for p in empty.iterdir()) == ["mlruns"]  # nothing else written where the user stands

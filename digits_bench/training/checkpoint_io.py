"""A run's checkpoint folder as a kill leaves it: each file complete or absent, last.ckpt naming a best
that exists, and nothing else once the run resumes."""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from digits_bench.errors import FULL_BELOW
from digits_bench.names import LAST_CHECKPOINT as LAST


def load_tensors(path: Path) -> dict[str, Any]:
    """A checkpoint read as tensors and plain types only (`weights_only=True`: no code runs); one that holds anything
    else (a pickle bomb), or is not a checkpoint at all, is one line (ModelLoadError, exit 2) naming it."""
    import pickle

    from digits_bench.errors import ModelLoadError

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelLoadError(f"{path.name} holds more than tensors: refused, loading it could run code") from None
    except Exception as err:  # zip and key errors: all mean "not a Lightning checkpoint"
        raise ModelLoadError(f"{path.name} is not a Lightning checkpoint ({type(err).__name__})") from None


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into a hidden temporary file in the same folder, fsync, then os.replace.

    Lightning's own save goes through a temporary file in the system temp folder and a
    cross-device move, which leaves a truncated checkpoint behind when the checkpoint disk
    fills up. A rename within one folder is atomic: a reader (or `resume=`) sees the old
    file or the new one, never half of one; on failure the temporary file is removed.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would make checkpoints private to one user
            os.replace(tmp, target)
        except RuntimeError as err:  # torch.save's zip writer turns a failed write into "[enforce fail at inline_container.cc]"
            full = shutil.disk_usage(target.parent).free < FULL_BELOW  # measured before the partial file goes
            Path(tmp).unlink(missing_ok=True)
            raise OSError(errno.ENOSPC if full else errno.EIO, f"torch.save failed: {str(err).splitlines()[0][:120]}",
                          str(target)) from None
        except BaseException as err:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(err, OSError) and err.filename is None:
                err.filename = str(target)  # "disk full writing <checkpoint>", not "writing a file"
            raise


class BestAndLast(ModelCheckpoint):
    """Lightning saves a new best, deletes the old best, then saves last.ckpt: killed in between, last.ckpt
    names a best that is gone, and the resumed run cannot test it. Here a replaced checkpoint is deleted
    only once last.ckpt names its successor."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._replaced: list[str] = []

    def _remove_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        self._replaced.append(filepath)

    def _save_last_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        replaced, self._replaced = self._replaced, []
        for path in replaced:
            super()._remove_checkpoint(trainer, path)


def tidy_for_resume(checkpoint_dir: Path) -> None:
    """Before a killed run resumes: what its last.ckpt does not name goes (the best of an epoch it was killed in,
    which the resumed run trains again; a checkpoint replaced in the meantime; a half-written temporary)."""
    state = torch.load(checkpoint_dir / LAST, map_location="cpu", weights_only=True)
    named = {Path(callback["best_model_path"]).name for key, callback in state.get("callbacks", {}).items()
             if isinstance(callback, dict) and callback.get("best_model_path")}
    for path in checkpoint_dir.iterdir():
        if path.name not in {LAST, *named} and (path.suffix == ".ckpt" or path.name.endswith(".tmp")):
            path.unlink(missing_ok=True)

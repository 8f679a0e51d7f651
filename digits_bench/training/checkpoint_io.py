"""Checkpoints that are either complete or absent: written beside their target, then renamed into place."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO


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
        except BaseException as err:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(err, OSError) and err.filename is None:
                err.filename = str(target)  # "disk full writing <checkpoint>", not "writing a file"
            raise

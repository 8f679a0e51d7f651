"""optimizer.lr throughout."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from digits_bench.schedules.base import Schedule


@dataclass(kw_only=True)
class Constant(Schedule):
    def lr(self, step: torch.Tensor, base_lr: float) -> torch.Tensor:
        return torch.full_like(step, base_lr, dtype=torch.float64)

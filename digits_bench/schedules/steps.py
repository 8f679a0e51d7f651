"""Per-epoch piecewise-constant rates (seed 004's schedule)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from digits_bench.schedules.base import Schedule


@dataclass(kw_only=True)
class Steps(Schedule):
    """factors[i] x optimizer.lr from epoch boundaries[i-1] on (config validation checks the lengths).

    The epoch is that of the step (completed steps // steps per epoch): the rate changes when an epoch starts.
    """

    boundaries: Sequence[int]
    factors: Sequence[float]

    def lr(self, step: torch.Tensor, base_lr: float) -> torch.Tensor:
        epoch = torch.div(step, self.steps_per_epoch, rounding_mode="floor")
        factor = torch.full_like(epoch, float(self.factors[0]), dtype=torch.float64)
        for boundary, value in zip(self.boundaries, self.factors[1:]):  # Python scalars: no host-to-device copies
            factor = torch.where(epoch >= int(boundary), float(value), factor)
        return base_lr * factor

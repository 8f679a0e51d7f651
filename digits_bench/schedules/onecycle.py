"""Smith's one-cycle policy, peaking at optimizer.lr."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from digits_bench.schedules.base import Schedule


@dataclass(kw_only=True)
class OneCycle(Schedule):
    """Cosine rise from lr/div_factor to lr over pct_start of the run, then cosine fall to lr/div_factor/final_div_factor
    (as torch's OneCycleLR without momentum cycling)."""

    pct_start: float
    div_factor: float
    final_div_factor: float

    def lr(self, step: torch.Tensor, base_lr: float) -> torch.Tensor:
        initial = base_lr / self.div_factor
        final = initial / self.final_div_factor
        peak_step = float(self.pct_start * self.total_steps) - 1
        last_step = self.total_steps - 1
        step = step.double()

        def anneal(start: float, end: float, pct: torch.Tensor) -> torch.Tensor:
            return end + (start - end) / 2.0 * (torch.cos(math.pi * pct) + 1)

        rising = anneal(initial, base_lr, (step - 0.0) / (peak_step - 0.0))
        falling = anneal(base_lr, final, (step - peak_step) / (last_step - peak_step))
        return torch.where(step <= peak_step, rising, falling)

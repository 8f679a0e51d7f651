"""Linear warm-up, then cosine decay, updated every step."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from digits_bench.schedules.base import Schedule


@dataclass(kw_only=True)
class Cosine(Schedule):
    """Rises linearly over warmup_epochs to optimizer.lr, then decays along a half cosine to min_factor x optimizer.lr."""

    warmup_epochs: float
    min_factor: float

    def lr(self, step: torch.Tensor, base_lr: float) -> torch.Tensor:
        warmup_steps = int(self.warmup_epochs * self.steps_per_epoch)
        step = step.double()
        warmup = (step + 1) / max(1, warmup_steps)
        progress = ((step - warmup_steps) / max(1, self.total_steps - warmup_steps)).clamp(max=1.0)
        decay = self.min_factor + (1 - self.min_factor) * 0.5 * (1 + torch.cos(math.pi * progress))
        return base_lr * torch.where(step < warmup_steps, warmup, decay)  # both branches computed, one kept

"""Learning-rate schedules (conf/schedule), each a factory Lightning can use from configure_optimizers.

Every factory takes the optimizer plus the run's length and returns a Lightning
lr_scheduler config dict, or None for a constant rate. Rates are multiples of
optimizer.lr, so a sweep over optimizer.lr scales the whole schedule.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR

SchedulerConfig = dict[str, Any] | None


@dataclass(frozen=True)
class PiecewiseConstant:
    """factors[i] from epoch boundaries[i-1] on (picklable, so it checkpoints)."""

    boundaries: tuple[int, ...]
    factors: tuple[float, ...]

    def __call__(self, epoch: int) -> float:
        return self.factors[bisect.bisect_right(self.boundaries, epoch)]


@dataclass(frozen=True)
class WarmupCosine:
    warmup_steps: int
    total_steps: int
    min_factor: float

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def constant(optimizer: Optimizer, *, epochs: int, steps_per_epoch: int) -> SchedulerConfig:
    return None


def steps(
    optimizer: Optimizer, *, epochs: int, steps_per_epoch: int, boundaries: Sequence[int], factors: Sequence[float]
) -> SchedulerConfig:
    """Per-epoch piecewise-constant rate; seed 004: 1 epoch at 0.01, 5 at 0.1, 5 at 0.01, then 0.001 (lr=0.1)."""
    if len(factors) != len(boundaries) + 1:
        raise ValueError("schedule.factors needs exactly one more entry than schedule.boundaries")
    fn = PiecewiseConstant(tuple(int(b) for b in boundaries), tuple(float(f) for f in factors))
    return {"scheduler": LambdaLR(optimizer, fn), "interval": "epoch"}


def cosine(
    optimizer: Optimizer, *, epochs: int, steps_per_epoch: int, warmup_epochs: float = 0.0, min_factor: float = 0.0
) -> SchedulerConfig:
    """Linear warm-up, then cosine decay to min_factor·lr, updated every step."""
    total = epochs * steps_per_epoch
    fn = WarmupCosine(int(warmup_epochs * steps_per_epoch), total, min_factor)
    return {"scheduler": LambdaLR(optimizer, fn), "interval": "step"}


def onecycle(
    optimizer: Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    pct_start: float = 0.25,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> SchedulerConfig:
    """Smith's one-cycle policy peaking at optimizer.lr."""
    peak = [group["lr"] for group in optimizer.param_groups]
    scheduler = OneCycleLR(
        optimizer,
        max_lr=peak,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        cycle_momentum=False,
    )
    return {"scheduler": scheduler, "interval": "step"}

"""Learning-rate schedules (conf/schedule), each a factory Lightning can use from configure_optimizers.

Every factory takes the optimizer plus the run's length and returns a Lightning
lr_scheduler config dict, or None for a constant rate. Rates are multiples of
optimizer.lr, so a sweep over optimizer.lr scales the whole schedule.

`tensor_schedule` gives the same rates as a pure function of a step-counter tensor
(`StepSchedule`), so the rate can be computed inside a captured CUDA graph. Its
arithmetic mirrors the Python forms operation by operation, in float64, so the
rates agree to the last bit (save rare last-ulp differences of cos).
"""
from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import torch
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

    def tensor(self, epoch: torch.Tensor) -> torch.Tensor:
        """Python scalars only (no host-to-device copies), so it can be captured in a CUDA graph."""
        factor = torch.full_like(epoch, self.factors[0], dtype=torch.float64)
        for boundary, value in zip(self.boundaries, self.factors[1:]):
            factor = torch.where(epoch >= boundary, value, factor)
        return factor


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

    def tensor(self, step: torch.Tensor) -> torch.Tensor:
        """`step` a float64 tensor; the same operations as __call__, both branches computed, one kept."""
        warmup = (step + 1) / max(1, self.warmup_steps)
        progress = ((step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)).clamp(max=1.0)
        decay = self.min_factor + (1 - self.min_factor) * 0.5 * (1 + torch.cos(math.pi * progress))
        return torch.where(step < self.warmup_steps, warmup, decay)


class StepSchedule(Protocol):
    def lr(self, step: torch.Tensor, base_lr: float) -> torch.Tensor:
        """The rate for optimizer step `step` (an int64 tensor counting completed steps), as float64."""
        ...


@dataclass(frozen=True)
class PerEpoch:
    """A LambdaLR factor of the epoch, stepped at epoch ends: epoch = completed steps // steps per epoch."""

    factor: PiecewiseConstant
    steps_per_epoch: int

    def lr(self, step: torch.Tensor, base_lr: float) -> torch.Tensor:
        return base_lr * self.factor.tensor(torch.div(step, self.steps_per_epoch, rounding_mode="floor"))


@dataclass(frozen=True)
class PerStep:
    """A LambdaLR factor of the step, stepped after every optimizer step."""

    factor: WarmupCosine

    def lr(self, step: torch.Tensor, base_lr: float) -> torch.Tensor:
        return base_lr * self.factor.tensor(step.double())


@dataclass(frozen=True)
class OneCycle:
    """torch's OneCycleLR (two phases, cosine annealing, no momentum cycling), as a function of the step."""

    total_steps: int
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


def tensor_schedule(factory: Callable[..., SchedulerConfig], *, epochs: int, steps_per_epoch: int) -> StepSchedule | None:
    """The tensor form of a conf/schedule factory (a Hydra partial); None for a constant rate.

    Raises LookupError for a factory without one, so callers can fall back to the Python form.
    """
    func = factory.func if isinstance(factory, functools.partial) else factory
    options = dict(factory.keywords) if isinstance(factory, functools.partial) else {}
    if func is constant:
        return None
    if func is steps:
        rule = PiecewiseConstant(tuple(int(b) for b in options["boundaries"]), tuple(float(f) for f in options["factors"]))
        return PerEpoch(rule, steps_per_epoch)
    if func is cosine:
        total = epochs * steps_per_epoch
        warmup = int(options.get("warmup_epochs", 0.0) * steps_per_epoch)
        return PerStep(WarmupCosine(warmup, total, options.get("min_factor", 0.0)))
    if func is onecycle:
        return OneCycle(epochs * steps_per_epoch, options.get("pct_start", 0.25), options.get("div_factor", 25.0),
                        options.get("final_div_factor", 1e4))
    raise LookupError(f"schedule {getattr(func, '__name__', func)!r} has no tensor form")

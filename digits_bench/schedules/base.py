"""What every schedule is: the learning rate as tensor arithmetic on the optimizer's step counter."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch


@dataclass(kw_only=True)
class Schedule(ABC):
    """The rate of every optimizer step of one run, as a multiple of optimizer.lr.

    Hydra builds a partial from conf/schedule/<name>.yaml, which holds the hyperparameters and their
    only defaults; the training module completes it with the run's length. `lr` reads no value back
    to the host, so the training step computes it inside a CUDA graph as well as outside one. Rates
    are multiples of the base rate, so a sweep over optimizer.lr scales the whole schedule.
    """

    epochs: int
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @abstractmethod
    def lr(self, step: torch.Tensor, base_lr: float) -> torch.Tensor:
        """The rate in force during optimizer step `step` (an int64 tensor counting completed steps), as float64."""

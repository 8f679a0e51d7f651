"""Optimizers (conf/optimizer targets torch.optim classes directly) and what each can do, declared here.

A CUDA-graphed training step needs an optimizer step that reads its learning rate from a device
tensor and never synchronises with the host: torch's fused form. `CAPTURABLE` maps an optimizer
class to the keyword arguments that select that form. An optimizer not listed trains without CUDA
graphs, and the run says so in one line: to graph a new optimizer, add its class here.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import torch

OptimizerFactory = Callable[..., torch.optim.Optimizer]

CAPTURABLE: dict[type, dict[str, Any]] = {
    torch.optim.SGD: {"fused": True},
    torch.optim.Adam: {"fused": True},
    torch.optim.AdamW: {"fused": True},
}


def optimizer_class(factory: OptimizerFactory) -> Any:
    """The class behind a conf/optimizer factory (Hydra gives a functools.partial)."""
    return factory.func if isinstance(factory, functools.partial) else factory


def capturable_options(factory: OptimizerFactory) -> dict[str, Any] | None:
    """Keyword arguments for the factory's capturable form, or None where none is declared."""
    return CAPTURABLE.get(optimizer_class(factory))

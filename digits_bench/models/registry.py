"""A timm-style model registry: every seed architecture is a named factory.

Configs name a model (`model.name`), never a class, so the CLI, sweeps, the
benchmark and `python -m digits_bench.models` all resolve models one way.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    seed: str
    summary: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, seed: str, summary: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register `factory` under `name`; `seed` is the tutorial it reproduces."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name, factory, seed, summary)
        return factory

    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}") from None


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; keyword arguments override the factory's defaults."""
    return model_entry(name).factory(**kwargs)


def _signature_for(name: str) -> inspect.Signature:
    """The keyword arguments `create_model(name, ...)` takes: the named factory's. Config validation asks a target
    for this when its arguments depend on what it builds, without knowing about the registry."""
    return inspect.signature(model_entry(name).factory)


create_model.signature_for = _signature_for  # type: ignore[attr-defined]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

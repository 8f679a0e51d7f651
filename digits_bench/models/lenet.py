"""Seed 000's LeNet: the MXNet tutorial's variant with tanh instead of sigmoid."""
from __future__ import annotations

from torch import nn

from digits_bench.models.init import initialize
from digits_bench.models.registry import register_model


@register_model("lenet", seed="000", summary="MXNet LeNet: conv5x5(20)-tanh-pool, conv5x5(50)-tanh-pool, fc500-tanh, fc10")
def lenet(num_classes: int = 10, dropout: float = 0.0, init: str = "uniform", init_scale: float = 0.01) -> nn.Module:
    """MXNet convolutions default to no padding, so 28 -> 24 -> 12 -> 8 -> 4."""
    model = nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.Tanh(), nn.MaxPool2d(2, 2),
        nn.Conv2d(20, 50, 5), nn.Tanh(), nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(50 * 4 * 4, 500), nn.Tanh(),
        nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
        nn.Linear(500, num_classes),
    )
    return initialize(model, init, init_scale)

"""Seed 002's Keras CNN, taken from the TensorFlow layers tutorial."""
from __future__ import annotations

from torch import nn

from digits_bench.models.init import initialize
from digits_bench.models.registry import register_model


@register_model("cnn_tf", seed="002", summary="Keras CNN conv5x5(32)-pool, conv5x5(64)-pool, fc1024 (no activation), dropout 0.4, fc10")
def cnn_tf(num_classes: int = 10, dropout: float = 0.4, init: str = "glorot_uniform") -> nn.Module:
    """Kept as the seed's code has it, slips included.

    Keras Conv2D defaults to 'valid' padding, so 28 -> 24 -> 12 -> 8 -> 4 (the TF
    tutorial it copies used 'same'). The seed adds Dense(1024) with no activation,
    so that layer is linear; we keep it linear rather than silently fix it.
    """
    model = nn.Sequential(
        nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(32, 64, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 1024),
        nn.Dropout(dropout),
        nn.Linear(1024, num_classes),
    )
    return initialize(model, init)

"""Fully connected seed models: a linear classifier and three MLPs."""
from __future__ import annotations

from torch import nn

from digits_bench.models.init import initialize
from digits_bench.models.registry import register_model


def _mlp(hidden: list[int], dropout: float, num_classes: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    width = 28 * 28
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


@register_model("linear", seed="004", summary="Keras Dense(10) on normalised pixels")
def linear(num_classes: int = 10, init: str = "glorot_uniform") -> nn.Module:
    """Seed 004's 'linear model': softmax regression, no hidden layer (its text says 10 hidden neurons; the code has none)."""
    return initialize(_mlp([], 0.0, num_classes), init)


@register_model("mlp_128_64", seed="000", summary="MXNet MLP 784-128-64-10, ReLU")
def mlp_128_64(num_classes: int = 10, dropout: float = 0.0, init: str = "uniform", init_scale: float = 0.01) -> nn.Module:
    """Seed 000's MLP; MXNet Module.fit initialises with Uniform(0.01)."""
    return initialize(_mlp([128, 64], dropout, num_classes), init, init_scale)


@register_model("mlp_512", seed="002", summary="Keras MLP 784-512-512-10, ReLU, dropout 0.2")
def mlp_512(num_classes: int = 10, dropout: float = 0.2, init: str = "glorot_uniform") -> nn.Module:
    return initialize(_mlp([512, 512], dropout, num_classes), init)


@register_model("mlp_500_300", seed="003", summary="NeuPy MLP 784-500-300-10, ReLU")
def mlp_500_300(num_classes: int = 10, dropout: float = 0.0, init: str = "glorot_uniform") -> nn.Module:
    """Seed 003's NeuPy network; NeuPy's default weight init is Glorot-style (He for ReLU in later versions)."""
    return initialize(_mlp([500, 300], dropout, num_classes), init)

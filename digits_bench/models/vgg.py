"""Seed 004's VGG-like CNNs: plain, with dropout, and with batch norm + dropout."""
from __future__ import annotations

from torch import nn

from digits_bench.models.init import initialize
from digits_bench.models.registry import register_model

# Keras BatchNormalization defaults: momentum 0.99 (PyTorch counts 1 - 0.99), epsilon 1e-3.
_BN = dict(momentum=0.01, eps=1e-3)


def _block(c_in: int, c_out: int, batch_norm: bool) -> list[nn.Module]:
    """Two unpadded 3x3 convolutions (Keras 'valid'), ReLU inside each, BN after the ReLU as Keras wrote it."""
    layers: list[nn.Module] = []
    for a, b in ((c_in, c_out), (c_out, c_out)):
        layers += [nn.Conv2d(a, b, 3), nn.ReLU()]
        if batch_norm:
            layers.append(nn.BatchNorm2d(b, **_BN))
    layers.append(nn.MaxPool2d(2))
    return layers


def _vgg(num_classes: int, conv_dropout: float, batch_norm: bool, fc_dropout: float, init: str) -> nn.Module:
    def drop(p: float) -> list[nn.Module]:
        return [nn.Dropout(p)] if p > 0 else []

    layers = [*_block(1, 32, batch_norm), *drop(conv_dropout), *_block(32, 64, batch_norm), *drop(conv_dropout)]
    layers += [nn.Flatten(), nn.Linear(64 * 4 * 4, 512), nn.ReLU()]  # 28 -> 26 -> 24 -> 12 -> 10 -> 8 -> 4
    if batch_norm:
        layers.append(nn.BatchNorm1d(512, **_BN))
    layers += [*drop(fc_dropout), nn.Linear(512, num_classes)]
    return initialize(nn.Sequential(*layers), init)


@register_model("vgg", seed="004", summary="Keras VGG-like: 2x conv3x3(32), pool, 2x conv3x3(64), pool, fc512, fc10")
def vgg(num_classes: int = 10, init: str = "glorot_uniform") -> nn.Module:
    return _vgg(num_classes, 0.0, False, 0.0, init)


@register_model("vgg_dropout", seed="004", summary="vgg with Dropout(0.5) after each pooling block")
def vgg_dropout(num_classes: int = 10, dropout: float = 0.5, init: str = "glorot_uniform") -> nn.Module:
    return _vgg(num_classes, dropout, False, 0.0, init)


@register_model("vgg_bn", seed="004", summary="vgg with BatchNorm after every conv and fc512, Dropout(0.5) before fc10")
def vgg_bn(num_classes: int = 10, dropout: float = 0.5, init: str = "glorot_uniform") -> nn.Module:
    return _vgg(num_classes, 0.0, True, dropout, init)

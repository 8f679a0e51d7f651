"""Seed 001's PyTorch CNN: four 3x3 convolutions with batch norm, then a 200-500 classifier."""
from __future__ import annotations

from torch import nn

from digits_bench.models.init import initialize
from digits_bench.models.registry import register_model


@register_model("cnn_bn", seed="001", summary="PyTorch CNN 5-10-20-40 conv3x3 + BN, fc200-dropout-fc500-fc10")
def cnn_bn(num_classes: int = 10, dropout: float = 0.5, init: str = "torch") -> nn.Module:
    """Layer order kept as the seed wrote it: pool before ReLU, BN after ReLU."""
    features = nn.Sequential(
        nn.Conv2d(1, 5, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(5, 10, 3, padding=1), nn.MaxPool2d(2, 2), nn.ReLU(inplace=True), nn.BatchNorm2d(10),
        nn.Conv2d(10, 20, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(20),
        nn.Conv2d(20, 40, 3, padding=1), nn.MaxPool2d(2, 2), nn.ReLU(inplace=True), nn.BatchNorm2d(40),
    )
    classifier = nn.Sequential(
        nn.Flatten(),
        nn.Linear(7 * 7 * 40, 200), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(200, 500), nn.ReLU(inplace=True),
        nn.Linear(500, num_classes),
    )
    return initialize(nn.Sequential(features, classifier), init)

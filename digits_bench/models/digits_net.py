"""A trained network in the form it is used after training: raw pixels in, logits out.

The form MLflow logs (and serves), and the one predict, predict-eval and ensembles load: the run's
normalisation travels with the weights, so a caller never needs the training module or its statistics.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from digits_bench.data.normalise import normalise


class DigitsNet(nn.Module):
    """A trained network with its input normalisation: pixel values 0-255, (N, 28, 28) or (N, 1, 28, 28), in."""

    def __init__(self, net: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.net = net
        self.mean, self.std = float(mean), float(std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(normalise(images, self.mean, self.std))


def inference_copy(net: nn.Module, mean: float, std: float) -> DigitsNet:
    """A CPU copy in eval mode, unwrapped from torch.compile, in the default memory format."""
    net = getattr(net, "_orig_mod", net)
    net = copy.deepcopy(net).cpu().to(memory_format=torch.contiguous_format).eval()
    return DigitsNet(net, mean, std).eval()

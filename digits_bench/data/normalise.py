"""The network's input, defined once: pixel values 0-255 standardised with the training set's statistics."""
from __future__ import annotations

import torch


def normalise(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Pixels 0-255, (N, 28, 28) or (N, 1, 28, 28) of any dtype -> a new float32 (N, 1, 28, 28) tensor of
    (x / 255 - mean) / std, computed as one multiply-add: training, evaluation and the logged model all call this."""
    x = images.unsqueeze(1) if images.dim() == 3 else images
    return x.to(torch.float32, copy=True).mul_(1.0 / (255.0 * std)).sub_(mean / std)

"""Batched random affine augmentation on the device (conf/aug).

Reproduces Keras' ImageDataGenerator(rotation_range, width_shift_range,
height_shift_range, shear_range, zoom_range) as used by seed 004, but draws one
transform per image for a whole batch at once and warps with affine_grid +
grid_sample: no PIL, no per-sample Python.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class RandomAffine(nn.Module):
    """Random rotation (degrees), shifts (fraction of size), shear (radians, as Keras 1) and per-axis zoom.

    Like Keras, the sampled matrix maps output pixels to input pixels; edges
    are filled with the nearest border pixel (Keras' fill_mode='nearest').
    All ranges zero makes this the identity at no cost.
    """

    def __init__(
        self,
        rotation: float = 0.0,
        width_shift: float = 0.0,
        height_shift: float = 0.0,
        shear: float = 0.0,
        zoom: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in dict(rotation=rotation, width_shift=width_shift, height_shift=height_shift, shear=shear, zoom=zoom).items():
            if value < 0:
                raise ValueError(f"aug.{name} must be >= 0 (got {value})")
        self.rotation, self.width_shift, self.height_shift = rotation, width_shift, height_shift
        self.shear, self.zoom = shear, zoom

    @property
    def enabled(self) -> bool:
        return any((self.rotation, self.width_shift, self.height_shift, self.shear, self.zoom))

    def matrices(self, n: int, device: torch.device) -> torch.Tensor:
        """(n, 2, 3) affine matrices in affine_grid's normalised [-1, 1] coordinates."""

        def uniform(limit: float) -> torch.Tensor:
            return (torch.rand(n, device=device) * 2 - 1) * limit

        angle = uniform(math.radians(self.rotation))
        shear = uniform(self.shear)
        zoom_x, zoom_y = 1 + uniform(self.zoom), 1 + uniform(self.zoom)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # rotation @ shear @ zoom, as Keras composes them (shift is the translation column).
        a = cos * zoom_x
        b = (-cos * torch.sin(shear) - sin * torch.cos(shear)) * zoom_y
        c = sin * zoom_x
        d = (-sin * torch.sin(shear) + cos * torch.cos(shear)) * zoom_y
        # a shift of s of the width is 2*s in normalised coordinates
        tx, ty = 2 * uniform(self.width_shift), 2 * uniform(self.height_shift)
        return torch.stack([torch.stack([a, b, tx], 1), torch.stack([c, d, ty], 1)], 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return images
        theta = self.matrices(images.shape[0], images.device).to(images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)

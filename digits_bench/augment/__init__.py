"""Batched random augmentation on the device (conf/aug).

Reproduces Keras' ImageDataGenerator(rotation_range, width_shift_range,
height_shift_range, shear_range, zoom_range) as used by seed 004, but draws one
transform per image for a whole batch at once and warps with affine_grid +
grid_sample: no PIL, no per-sample Python. For reading other writers' digits
(aug=reader) it adds what differs between pens and scans: stroke thickness (a
3x3 dilation or erosion), elastic distortion (a smoothed random displacement of
the warp) and blur. Every draw is a device tensor: the step stays capturable.
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
        stroke: float = 0.0,
        elastic: float = 0.0,
        elastic_sigma: float = 4.0,
        blur: float = 0.0,
    ) -> None:
        super().__init__()
        ranges = dict(rotation=rotation, width_shift=width_shift, height_shift=height_shift, shear=shear, zoom=zoom,
                      stroke=stroke, elastic=elastic, blur=blur)
        for name, value in ranges.items():
            if value < 0:
                raise ValueError(f"aug.{name} must be >= 0 (got {value})")
        self.rotation, self.width_shift, self.height_shift = rotation, width_shift, height_shift
        self.shear, self.zoom = shear, zoom
        self.stroke = stroke  # the share of images thickened or thinned (half each)
        self.elastic, self.elastic_sigma = elastic, elastic_sigma  # displacement in pixels, smoothed over sigma pixels
        self.blur = blur  # the largest Gaussian sigma, in pixels

    @property
    def enabled(self) -> bool:
        return any((self.rotation, self.width_shift, self.height_shift, self.shear, self.zoom, self.stroke, self.elastic, self.blur))

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
        if self.elastic:
            grid = grid + self.displacement(images)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if self.stroke:
            images = self.restroke(images)
        if self.blur:
            images = self.blurred(images)
        return images

    def displacement(self, images: torch.Tensor) -> torch.Tensor:
        """(n, H, W, 2) elastic offsets in grid coordinates: white noise smoothed by a Gaussian (Simard et al. 2003)."""
        n, _, h, w = images.shape
        noise = torch.rand(n, 2, h, w, device=images.device, dtype=images.dtype) * 2 - 1
        smooth = _gaussian_blur(noise, torch.full((n,), self.elastic_sigma, device=images.device, dtype=images.dtype))
        smooth = smooth / smooth.flatten(1).abs().amax(1).clamp(min=1e-6).view(n, 1, 1, 1)  # peak offset: `elastic` px
        scale = torch.tensor([2 / w, 2 / h], device=images.device, dtype=images.dtype).view(1, 2, 1, 1)
        return (smooth * self.elastic * scale).permute(0, 2, 3, 1)

    def restroke(self, images: torch.Tensor) -> torch.Tensor:
        """A 3x3 dilation (thicker pen) or erosion (thinner) of a random share of the images; ink is the high value."""
        draw = torch.rand(images.shape[0], 1, 1, 1, device=images.device)
        thick = F.max_pool2d(images, 3, stride=1, padding=1)
        thin = -F.max_pool2d(-images, 3, stride=1, padding=1)
        return torch.where(draw < self.stroke / 2, thick, torch.where(draw < self.stroke, thin, images))

    def blurred(self, images: torch.Tensor) -> torch.Tensor:
        sigma = torch.rand(images.shape[0], device=images.device, dtype=images.dtype) * self.blur
        return _gaussian_blur(images, sigma)


def _gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, radius: int = 6) -> torch.Tensor:
    """Each image (and channel) blurred with its own sigma: one grouped convolution, separable, border replicated."""
    n, c, h, w = images.shape
    x = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-(x.view(1, -1) ** 2) / (2 * sigma.clamp(min=1e-3).view(-1, 1) ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n*c, k)
    flat = F.pad(images.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, kernel.view(n * c, 1, 1, -1), groups=n * c)
    flat = F.conv2d(flat, kernel.view(n * c, 1, -1, 1), groups=n * c)
    return flat.view(n, c, h, w)

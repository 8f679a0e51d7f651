"""Batched on-device augmentation (conf/aug)."""
from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate

from digits_bench.augment import RandomAffine

from .conftest import compose


def digit_batch(n: int = 32) -> torch.Tensor:
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0  # a vertical bar: a "1"
    return x


def test_off_is_exact_identity():
    aug = instantiate(compose("aug=off").aug)
    x = digit_batch()
    assert aug(x) is x


def test_on_matches_seed_004_ranges_and_varies_per_image():
    aug = instantiate(compose("aug=on").aug)
    assert (aug.rotation, aug.width_shift, aug.height_shift, aug.shear, aug.zoom) == (8.0, 0.08, 0.08, 0.3, 0.08)
    torch.manual_seed(0)
    x = digit_batch()
    y = aug(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert not torch.allclose(y, x)
    assert not torch.allclose(y[0], y[1])  # a fresh transform for every image
    ink = y.sum(dim=(1, 2, 3)) / x[0].sum()
    assert ink.min() > 0.75 and ink.max() < 1.3  # small transforms keep the digit in frame


def test_matrices_stay_within_their_ranges():
    aug = RandomAffine(rotation=8, width_shift=0.08, height_shift=0.08)
    theta = aug.matrices(4096, torch.device("cpu"))
    angles = torch.atan2(theta[:, 1, 0], theta[:, 0, 0])
    assert angles.abs().max() <= math.radians(8) + 1e-6
    assert theta[:, :, 2].abs().max() <= 2 * 0.08 + 1e-6
    assert angles.abs().max() > math.radians(7)  # and it uses the range


def test_pure_shift_moves_pixels():
    aug = RandomAffine(width_shift=0.5)
    theta = aug.matrices(1, torch.device("cpu"))
    assert theta[0, 0, 0] == pytest.approx(1.0) and theta[0, 1, 1] == pytest.approx(1.0)


def test_negative_range_rejected():
    with pytest.raises(ValueError, match="aug.rotation"):
        RandomAffine(rotation=-1)


def test_reader_strokes_thicken_and_thin_a_share_of_the_images():
    """aug=reader's pen: a 3x3 dilation adds a pixel each side of a stroke, an erosion takes one; the rest unchanged."""
    torch.manual_seed(0)
    x = digit_batch(400)
    out = RandomAffine(stroke=0.5)(x)
    mass = out.sum(dim=(1, 2, 3))
    bar = x[0].sum()  # 12 x 4
    thick, thin, same = (mass == 14 * 6).float().mean(), (mass == 10 * 2).float().mean(), (mass == bar).float().mean()
    assert thick + thin + same == 1 and 0.18 < thick < 0.32 and 0.18 < thin < 0.32


def test_reader_blur_keeps_the_ink_and_elastic_offsets_stay_within_their_pixels():
    torch.manual_seed(0)
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 10:18, 10:18] = 1.0  # away from the border: blurring moves no ink out of the frame
    blurred = RandomAffine(blur=2.0)(x)
    assert torch.allclose(blurred.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)), rtol=1e-4) and not torch.equal(blurred, x)
    aug = RandomAffine(elastic=2.0, elastic_sigma=4.0)
    offsets = aug.displacement(x) * 28 / 2  # back to pixels
    assert offsets.abs().amax() == pytest.approx(2.0, rel=1e-4) and offsets.shape == (8, 28, 28, 2)
    assert not torch.equal(aug(x), x)


@pytest.mark.fit
def test_the_reader_recipe_trains_through_the_one_path(isolated_store):
    from digits_bench.training.run import train

    from .conftest import TINY

    result = train(compose("experiment=reader", *TINY, "data.batch_size=64"))
    assert result is not None and result.metrics["train/loss"] == result.metrics["train/loss"]  # finite, recorded
    assert result.choices["aug"] == "reader" and result.choices["experiment"] == "reader"

"""predict's preprocessing steps (predict/preprocess.py), each on a drawing whose answer is known: a pen far
from MNIST's is brought to MNIST's stroke width without breaking the digit, and a 1 stays narrow."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from digits_bench.predict.preprocess import MAX_STROKE, Switches, read_page, stroke_width


def drawn(tmp_path: Path, ink: np.ndarray) -> Path:
    """Dark ink (a boolean mask) on white paper, saved as a PNG."""
    path = tmp_path / "drawn.png"
    Image.fromarray(np.where(ink, 20, 235).astype(np.uint8)).save(path)
    return path


def ring(width: float, radius: float = 100, size: int = 400) -> np.ndarray:
    """A 0 drawn with a pen `width` px wide."""
    y, x = np.mgrid[0:size, 0:size] - size / 2
    return np.abs(np.hypot(y / 1.3, x) - radius / 1.3) <= width / 2


def crop(tmp_path: Path, ink: np.ndarray, **steps: bool) -> np.ndarray:
    (digit,) = read_page(drawn(tmp_path, ink), Switches(**steps)).digits
    return digit.crop > 128


def holes(mask: np.ndarray) -> int:
    return ndi.label(~mask)[1] - 1


def test_a_marker_is_thinned_to_mnists_pen_and_keeps_its_loop(tmp_path: Path):
    marker = ring(width=60)  # 260 px tall: 60 * 20 / 260 = 4.6 px at the 20-px scale
    thinned, kept = crop(tmp_path, marker, thin=True), crop(tmp_path, marker)  # off by default: no help on the set
    assert stroke_width(kept) > MAX_STROKE + 1  # as drawn, its hole a third of MNIST's
    assert stroke_width(thinned) <= MAX_STROKE and holes(thinned) == 1 and ndi.label(thinned)[1] == 1


def test_a_thin_pen_is_thickened_so_it_survives_the_20px_scale(tmp_path: Path):
    hairline = ring(width=2.5)  # 0.2 px at the 20-px scale: half of it would fade below MNIST's grey 128
    thickened, kept = crop(tmp_path, hairline, thicken=True), crop(tmp_path, hairline)  # off by default: no help on the set
    assert holes(thickened) == 1 and ndi.label(thickened)[1] == 1  # a whole 0, as MNIST draws it
    assert thickened.sum() > 1.5 * kept.sum() and ndi.label(kept)[1] > 1  # unthickened it falls apart


def test_a_pen_like_mnists_is_left_as_it_is(tmp_path: Path):
    pen = ring(width=40)  # 260 px tall: 40 * 20 / 260 = 3.1 px at the 20-px scale, MNIST's range
    assert (crop(tmp_path, pen, thin=True, thicken=True) == crop(tmp_path, pen, thin=False, thicken=False)).all()


@pytest.mark.parametrize("keep_aspect", [True, False])
def test_a_one_stays_narrow_unless_keep_aspect_is_off(tmp_path: Path, keep_aspect: bool):
    one = np.zeros((300, 300), dtype=bool)
    one[40:260, 140:165] = True
    columns = np.flatnonzero(crop(tmp_path, one, keep_aspect=keep_aspect).any(axis=0))
    width = columns.max() - columns.min() + 1
    assert (width <= 5) if keep_aspect else (width >= 18)

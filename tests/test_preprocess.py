"""predict's preprocessing steps (predict/preprocess.py), each on a drawing whose answer is known: a pen far
from MNIST's is brought to MNIST's stroke width without breaking the digit, and a 1 stays narrow."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from digits_bench.data import strokes
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


def _row(styles: list[str], gaps: list[int], shear: float, seed: int) -> np.ndarray:
    """Stroke-drawn digits side by side, `gaps` px of paper between their ink, then the whole row slanted by `shear`
    (x per y), as the evaluation set's slant condition does: the digits' boxes overlap, their ink does not."""
    rng = np.random.default_rng(seed)
    inks = []
    for style in styles:
        sk = strokes.skeleton(style, seed % strokes.SKELETONS)
        glyph = np.asarray(strokes.draw(strokes.Skeleton(sk.style, sk.number, sk.strokes, sk.width, 0.0), 80,
                                        strokes.Pen(0.07, 0.2, 0.004, 0.0), rng)) < 128
        cols = np.flatnonzero(glyph.any(axis=0))
        inks.append(glyph[:, cols[0] : cols[-1] + 1])
    height = max(ink.shape[0] for ink in inks) + 60
    width = sum(ink.shape[1] for ink in inks) + sum(gaps) + 60 + int(abs(shear) * height)
    page = np.zeros((height, width), dtype=bool)
    x = 30 + int(max(0.0, -shear) * height)
    for ink, gap in zip(inks, [*gaps, 0]):
        page[30 : 30 + ink.shape[0], x : x + ink.shape[1]] |= ink
        x += ink.shape[1] + gap
    image = Image.fromarray(np.where(page, 0, 255).astype(np.uint8))
    slanted = image.transform(image.size, Image.Transform.AFFINE, (1, shear, 0, 0, 1, 0), fillcolor=255)
    return np.asarray(slanted) < 128


@pytest.mark.parametrize("seed", range(4))
def test_digits_of_a_slanted_row_are_cut_apart_where_their_ink_has_a_gap(tmp_path: Path, seed: int):
    """Slanted by half a pixel a row, 11-14 px of paper between digits: the boxes of a narrow 7 or 1 and its
    neighbour overlap by more than half the narrower one, which once made them one digit ("9957107" read "999107";
    this row read 6 digits for 3 of these 4 seeds)."""
    row = _row(["9 straight tail", "9 straight tail", "5", "7", "1", "0", "7"], [14, 12, 11, 13, 12, 14], shear=0.5, seed=seed)
    boxes = [d.box for d in read_page(drawn(tmp_path, row)).digits]
    assert len(boxes) == 7, boxes


def test_the_pieces_of_a_broken_digit_still_make_one(tmp_path: Path):
    """A 7 whose crossbar does not touch it, and a 5 whose flag is lifted off its body: one digit each."""
    seven = np.zeros((300, 300), dtype=bool)
    seven[40:52, 60:240] = True                           # the top bar
    for y in range(52, 260):                              # the stem, down and to the left
        x = int(240 - (y - 52) * 0.55)
        seven[y, x - 6 : x + 6] = True
    seven[150:160, 80:150] = True                         # a crossbar that stops short of the stem (x ~ 185)
    five = np.zeros((300, 300), dtype=bool)
    five[40:52, 110:230] = True                           # the flag, lifted off ...
    five[60:140, 100:112] = True                          # ... the body's down stroke
    y, x = np.mgrid[0:300, 0:300]
    five |= (np.abs(np.hypot((y - 190) / 1.0, (x - 150) / 1.1) - 60) <= 6) & ~((x < 150) & (y < 190))
    assert len(read_page(drawn(tmp_path, seven)).digits) == 1
    assert len(read_page(drawn(tmp_path, five)).digits) == 1


def test_a_hairline_that_fades_keeps_its_digit_whole(tmp_path: Path):
    """A 0 whose top and bottom fade to a faint grey (a thin pen running dry): the faint ink joins the strokes it
    touches, so it is one digit, not a left and a right half."""
    ring_ink = ring(width=6)
    pixels = np.where(ring_ink, 20, 235).astype(np.uint8)
    rows = np.arange(400)[:, None]
    pixels[ring_ink & ((rows < 130) | (rows > 270))] = 175  # faint: above the paper, far below Otsu's cut
    path = tmp_path / "fading.png"
    Image.fromarray(pixels).save(path)
    (digit,) = read_page(path).digits
    assert digit.box[2] - digit.box[0] > 150  # the whole ring, both halves

"""The evaluation set of handwriting that is not MNIST's (predict/evalset.py): drawn from one seed, labelled right."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digits_bench.data import strokes
from digits_bench.predict import evalset

pytestmark = pytest.mark.skipif(not evalset.handwriting_fonts(), reason="handwriting fonts not installed (make system-deps)")


def fake_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Ten light-on-black 28x28 'digits' (a bar each) with labels 0-9."""
    images = np.zeros((10, 28, 28), dtype=np.uint8)
    for i in range(10):
        images[i, 4:24, 10 + i % 8 : 13 + i % 8] = 255
    return images, np.arange(10)


def test_the_same_seed_draws_the_same_set_byte_for_byte(tmp_path: Path):
    first = evalset.build(tmp_path / "a", seed=3, per_condition=4, mnist_test=fake_mnist())
    again = evalset.build(tmp_path / "b", seed=3, per_condition=4, mnist_test=fake_mnist())
    other = evalset.build(tmp_path / "c", seed=4, per_condition=4, mnist_test=fake_mnist())
    assert first == again and first != other and evalset.load(tmp_path / "a") == first
    assert all((tmp_path / "a" / i.file).read_bytes() == (tmp_path / "b" / i.file).read_bytes() for i in first)
    assert {i.condition for i in first} == set(evalset.CONDITIONS)
    assert {i.kind for i in first} == {"single", "row"} and all(3 <= len(i.text) <= 8 for i in first if i.kind == "row")
    assert {i.source for i in first} >= {evalset.MNIST_SOURCE, evalset.STROKES_SOURCE} and any(i.source.endswith((".ttf", ".otf")) for i in first)
    drawn = [i for i in first if i.source == evalset.STROKES_SOURCE]
    assert all(i.style in strokes.STYLES and strokes.STYLES[i.style][0] == i.text for i in drawn if i.kind == "single")
    assert {i.style for i in drawn if i.kind == "single"} == set(strokes.STYLES)  # each style in turn (20 singles, 18 styles)
    assert all(i.style in strokes.HABITS for i in drawn if i.kind == "row") and all(not i.style for i in first if i not in drawn)


def test_a_font_row_is_its_digits_left_to_right_with_gaps(tmp_path: Path):
    """Labels are what is written: the ink falls into as many columns as the label has digits."""
    rng = np.random.default_rng(0)
    for font in evalset.handwriting_fonts()[:6]:
        page = np.asarray(evalset.write_digits("3170", font, rng)) < 128
        columns = page.any(axis=0)
        starts = np.flatnonzero(columns[1:] & ~columns[:-1])
        assert len(starts) + int(columns[0]) == 4, font.name


def test_an_8x8_digit_is_scanned_dark_on_white_with_a_margin():
    """The held-out check: scikit-learn's 8x8 digits as a scanner would give them, ink where the digit has ink."""
    from sklearn.datasets import load_digits

    digit = load_digits().images[0]  # a 0: ink around a hole in the middle
    page = np.asarray(evalset.photograph_8x8(digit, np.random.default_rng(0)))
    scale = page.shape[0] // 12
    assert page.shape == (12 * scale, 12 * scale) and 6 <= scale <= 10
    assert (page[: 2 * scale] == 255).all() and (page[:, : 2 * scale] == 255).all()  # paper around the digit
    cells = page[2 * scale : 10 * scale, 2 * scale : 10 * scale].reshape(8, scale, 8, scale).mean(axis=(1, 3))
    assert np.corrcoef(cells.ravel(), -digit.ravel())[0, 1] > 0.95  # dark where the 8x8 digit has ink


def test_a_thin_pen_thins_every_font_without_erasing_it():
    """Version 1 eroded a fixed pixel: a light font's strokes vanished, and no reader could read what was left."""
    from scipy import ndimage as ndi

    from digits_bench.predict.preprocess import stroke_width

    rng = np.random.default_rng(0)
    for font in evalset.handwriting_fonts():
        page = evalset.write_digits("8", font, rng)
        before, after = np.asarray(page) < 128, np.asarray(evalset.CONDITIONS["thin pen"](page, rng)) < 128
        assert stroke_width(after) <= max(3.5, stroke_width(before)), font.name  # thin, or as thin as it was
        assert ndi.label(after, structure=np.ones((3, 3)))[1] <= ndi.label(before, structure=np.ones((3, 3)))[1] + 1, font.name


@pytest.mark.parametrize("habit", sorted(strokes.HABITS))
def test_a_stroke_row_is_its_digits_left_to_right_and_writers_keep_their_skeletons(habit: str):
    """A row drawn in one writer's habit falls into as many columns of ink as it has digits; a writer's skeleton is
    drawn from (style, writer) alone, and training's writers are not the evaluation's."""
    rng = np.random.default_rng(1)
    styles = [strokes.HABITS[habit][d][0] for d in "3170"]
    page = np.asarray(evalset.draw_digits(styles, strokes.EVALUATION_WRITERS[0], rng)) < 128
    columns = page.any(axis=0)
    assert len(np.flatnonzero(columns[1:] & ~columns[:-1])) + int(columns[0]) == 4
    assert strokes.skeleton(styles[0], 7) == strokes.skeleton(styles[0], 7) != strokes.skeleton(styles[0], 8)
    assert not set(strokes.TRAINING_WRITERS) & set(strokes.EVALUATION_WRITERS)


def test_the_validation_writers_set_is_another_set_by_other_writers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`predict-eval --writers validation`: what data.strokes and preprocessing are chosen on is drawn by writers
    neither training nor the report's set draws, from a stream of its own."""
    used: list[int] = []
    real = strokes.skeleton
    monkeypatch.setattr(strokes, "skeleton", lambda style, writer: used.append(writer) or real(style, writer))
    report = evalset.build(tmp_path / "e", seed=0, per_condition=2)
    seen, used[:] = set(used), []
    chosen = evalset.build(tmp_path / "v", seed=0, per_condition=2, writers="validation")
    assert seen <= set(strokes.EVALUATION_WRITERS) and set(used) <= set(strokes.VALIDATION_WRITERS) and used
    assert (tmp_path / "e" / report[1].file).read_bytes() != (tmp_path / "v" / chosen[1].file).read_bytes()

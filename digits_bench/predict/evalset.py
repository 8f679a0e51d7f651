"""Handwriting that is not MNIST's, made offline and reproducibly: how well a run reads other writers and pens.

Three sources. Digits written in the handwriting-style fonts Debian ships (fonts-dkg-handwriting, fonts-bwht,
fonts-breip, fonts-femkeklaver, fonts-humor-sans, fonts-kaushanscript, fonts-comic-neue; `make test` installs
them); digits drawn stroke by stroke in the styles people write (`strokes.py`: a 1 with a flag, a crossed 7, an
open 4, ...), by writers that training never sees; and MNIST *test* digits re-rendered as photographs of paper,
reported apart (MNIST's own writers). Each image is drawn under one condition
(pen width, blur, low resolution scaled up, slant, size in the frame, lighting and noise, ink colour, JPEG),
as a single digit or a row of 3-8 digits with varied gaps. Everything is drawn from one seed: the same seed
is the same set, byte for byte. scikit-learn's 8x8 digits are kept out of it (and out of training and tuning):
they stay an independent check.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from digits_bench.data import strokes

FONT_DIRS = ("fifthhorseman", "bwht", "breip", "femkeklaver", "humor-sans", "kaushanscript", "comic-neue")
FONT_ROOT = Path("/usr/share/fonts")
VERSION = 4  # bumped whenever the set draws differently: a set cached by an older version is not reused
MNIST_SOURCE = "mnist photo"
STROKES_SOURCE = "strokes"
SKLEARN_8X8 = "scikit-learn 8x8 (held out)"  # the independent check's condition: reported apart, never in "overall"
Condition = Callable[[Image.Image, np.random.Generator], Image.Image]


@dataclass(frozen=True)
class Item:
    file: str
    text: str
    condition: str
    source: str  # a font's file name, "strokes" or "mnist photo"
    kind: str  # single or row
    style: str = ""  # strokes: a single digit's style ("7 crossbar"), a row's writing habit ("european")


def handwriting_fonts(root: Path = FONT_ROOT) -> list[Path]:
    """The installed handwriting fonts (Debian's packages above), in a stable order."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".ttf", ".otf") and p.parent.name in FONT_DIRS)


def _thin_pen(page: Image.Image) -> Image.Image:
    """A thin pen: a pixel off each side of strokes 5-10 px wide on average, two off wider ones; a font already
    thinner is left as it is. Strokes vary along a glyph: a fixed erosion (version 1 of the set) erased a light
    font's hairlines and left specks no reader could read."""
    from digits_bench.predict.preprocess import stroke_width

    erode = int(stroke_width(np.asarray(page) < 128) // 5)
    return page.filter(ImageFilter.MaxFilter(2 * erode + 1)) if erode >= 1 else page


CONDITIONS: dict[str, Condition] = {
    "clean": lambda page, rng: page,
    "thin pen": lambda page, rng: _thin_pen(page),
    "marker": lambda page, rng: page.filter(ImageFilter.MinFilter(5)),  # the dark ink dilated
    "blur": lambda page, rng: page.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.5, 2.5)))),
    "low resolution": lambda page, rng: page.resize((max(8, page.width // 5), max(8, page.height // 5)), Image.Resampling.BILINEAR)
                                            .resize(page.size, Image.Resampling.BICUBIC),
    "slant": lambda page, rng: page.transform(page.size, Image.Transform.AFFINE, (1, float(rng.uniform(-0.35, 0.35)), 0, 0, 1, 0),
                                              fillcolor=255),
    "small in frame": lambda page, rng: _shrink(page, float(rng.uniform(0.35, 0.5))),
    "lighting and noise": lambda page, rng: _lighting(page, rng),
    "blue ink on cream": lambda page, rng: _colour(page),
    "jpeg": lambda page, rng: _jpeg(page, int(rng.integers(15, 30))),
}


def _shrink(page: Image.Image, scale: float) -> Image.Image:
    small = page.resize((int(page.width * scale), int(page.height * scale)), Image.Resampling.LANCZOS)
    canvas = Image.new("L", page.size, 255)
    canvas.paste(small, ((page.width - small.width) // 2, (page.height - small.height) // 2))
    return canvas


def _lighting(page: Image.Image, rng: np.random.Generator) -> Image.Image:
    ink = 1.0 - np.asarray(page, dtype=np.float32) / 255
    y, x = np.mgrid[0 : page.height, 0 : page.width]
    paper = 225 - 70 * (x / page.width + y / page.height) / 2  # a lamp on the top left
    pixels = paper - ink * (paper - 40) + rng.normal(0, 8, page.size[::-1])
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _colour(page: Image.Image) -> Image.Image:
    ink = 1.0 - np.asarray(page, dtype=np.float32)[..., None] / 255
    cream, blue = np.array([245, 238, 215], np.float32), np.array([25, 45, 150], np.float32)
    return Image.fromarray((cream + ink * (blue - cream)).astype(np.uint8), "RGB")


def _jpeg(page: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    page.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("L")


def write_digits(text: str, font: Path, rng: np.random.Generator) -> Image.Image:
    """Dark digits on white paper in a font, one glyph at a time with varied gaps and baselines, a margin around them."""
    size = int(rng.integers(60, 90))
    face = ImageFont.truetype(str(font), size)
    glyphs = []
    for char in text:
        left, top, right, bottom = face.getbbox(char)
        glyph = Image.new("L", (right - left + 4, bottom - top + 4), 255)
        ImageDraw.Draw(glyph).text((2 - left, 2 - top), char, font=face, fill=0)
        glyphs.append(glyph)
    return _lay_out(glyphs, size, rng)


def draw_digits(styles: list[str], writer: int, rng: np.random.Generator) -> Image.Image:
    """Digits in these styles, as writer `writer` draws them with one pen, laid out as `write_digits` lays a font's."""
    size = int(rng.integers(60, 90))
    pen = strokes.random_pen(rng)
    return _lay_out([strokes.draw(strokes.skeleton(style, writer), size, pen, rng) for style in styles], size, rng)


def _lay_out(glyphs: list[Image.Image], size: int, rng: np.random.Generator) -> Image.Image:
    """Glyphs side by side on white paper, with varied gaps and baselines and a margin around them."""
    gaps = [int(rng.integers(size // 6, size // 2)) for _ in glyphs[1:]]
    margin = size // 2
    height = max(g.height for g in glyphs) + 2 * margin + size // 6
    page = Image.new("L", (sum(g.width for g in glyphs) + sum(gaps) + 2 * margin, height), 255)
    x = margin
    for glyph, gap in zip(glyphs, [*gaps, 0]):
        page.paste(glyph, (x, margin + int(rng.integers(0, size // 6 + 1))))
        x += glyph.width + gap
    return page


def photograph_mnist(digits: list[np.ndarray], rng: np.random.Generator) -> Image.Image:
    """MNIST test digits (light on black, 28x28) as dark strokes on paper, scaled up, side by side."""
    scale = int(rng.integers(4, 7))
    tiles = [Image.fromarray(255 - d).resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC) for d in digits]
    gaps = [int(rng.integers(0, 10 * scale)) for _ in tiles[1:]]
    margin = 8 * scale
    page = Image.new("L", (sum(t.width for t in tiles) + sum(gaps) + 2 * margin, 28 * scale + 2 * margin), 255)
    x = margin
    for tile, gap in zip(tiles, [*gaps, 0]):
        page.paste(tile, (x, margin))
        x += tile.width + gap
    return page


def build(out: Path, seed: int = 0, per_condition: int = 40, mnist_test: tuple[np.ndarray, np.ndarray] | None = None,
          fonts: list[Path] | None = None, writers: str = "evaluation") -> list[Item]:
    """Write the set into `out` (images and labels.csv) and return its items. Per condition: `per_condition` single
    digits and a quarter as many rows (at least one): a quarter from fonts, half drawn in strokes (each style in
    turn, by `writers`: the evaluation's, or the validation's that choices such as data.strokes are made on, drawn
    from a stream of the seed's own), a quarter from MNIST test digits (when given; else fonts)."""
    fonts = handwriting_fonts() if fonts is None else fonts
    if not fonts:
        raise FileNotFoundError(f"no handwriting fonts in {FONT_ROOT} (apt-get install fonts-dkg-handwriting fonts-bwht ...; "
                                "make test installs them)")
    rng = np.random.default_rng(seed if writers == "evaluation" else [seed, 4])
    out.mkdir(parents=True, exist_ok=True)
    items = []
    styles = list(strokes.STYLES)
    drawn = 0  # stroke singles so far: each style in turn
    for condition, draw in CONDITIONS.items():
        for n in range(per_condition + max(1, per_condition // 4)):
            kind = "single" if n < per_condition else "row"
            length = 1 if kind == "single" else int(rng.integers(3, 9))
            from_mnist = mnist_test is not None and n % 4 == 3
            style = ""
            if n % 4 in (1, 2) or (n % 4 == 3 and not from_mnist):
                writer = int(rng.choice(strokes.WRITERS[writers]))
                if kind == "single":
                    style, drawn = styles[drawn % len(styles)], drawn + 1
                    chosen = [style]
                else:
                    style = str(rng.choice(sorted(strokes.HABITS)))
                    habit = {d: str(rng.choice(options)) for d, options in strokes.HABITS[style].items()}
                    chosen = [habit[str(d)] for d in rng.integers(0, 10, length)]
                text, source = "".join(strokes.STYLES[c][0] for c in chosen), STROKES_SOURCE
                page = draw_digits(chosen, writer, rng)
            elif from_mnist:
                images, labels = mnist_test  # type: ignore[misc]
                picks = rng.integers(0, len(labels), length)
                text, source = "".join(str(int(labels[i])) for i in picks), MNIST_SOURCE
                page = photograph_mnist([images[i] for i in picks], rng)
            else:
                text = "".join(str(int(d)) for d in rng.integers(0, 10, length))
                font = fonts[int(rng.integers(0, len(fonts)))]
                source, page = font.name, write_digits(text, font, rng)
            name = f"{condition.replace(' ', '-')}-{kind}-{n:03d}.{'jpg' if condition == 'jpeg' else 'png'}"
            draw(page, rng).save(out / name, **({"quality": 95} if condition == "jpeg" else {}))
            items.append(Item(name, text, condition, source, kind, style))
    _write_labels(out, items)
    return items


def photograph_8x8(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """One scikit-learn 8x8 digit (ink 0-16) as a scan: dark ink on white paper, scaled up 6-10x, a margin around it."""
    scale = int(rng.integers(6, 11))
    ink = Image.fromarray((255 - digit * (255 / 16)).astype(np.uint8)).resize((8 * scale, 8 * scale), Image.Resampling.BICUBIC)
    page = Image.new("L", (12 * scale, 12 * scale), 255)
    page.paste(ink, (2 * scale, 2 * scale))
    return page


def build_8x8(out: Path, seed: int = 0) -> list[Item]:
    """scikit-learn's bundled 8x8 digits (1797, by other writers than MNIST's, scanned at 8x8), every one as a
    scan: the independent check, never used to train, tune or choose a preprocessing step."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for n, (image, label) in enumerate(zip(digits.images, digits.target)):
        name = f"sklearn-8x8-{n:04d}.png"
        photograph_8x8(image, rng).save(out / name)
        items.append(Item(name, str(int(label)), SKLEARN_8X8, "scikit-learn load_digits", "single"))
    _write_labels(out, items)
    return items


def _write_labels(out: Path, items: list[Item]) -> None:
    with open(out / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(Item.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(item.__dict__ for item in items)


def load(folder: Path) -> list[Item]:
    with open(folder / "labels.csv", newline="") as handle:
        return [Item(**row) for row in csv.DictReader(handle)]

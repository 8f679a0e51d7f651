"""Digits drawn stroke by stroke with a pen: the shapes people write, not only the conditions they write under.

Each digit has the styles people use (a 1 with a long lead-in flag or a base serif, a 7 with a crossbar, an open
or a closed 4, a 6 whose top curls over, a 9 with a straight or a curved tail, a 2 with a loop, a slashed 0),
each a skeleton of strokes in a unit box (x right, y down; smooth strokes pass through their points, polylines
keep their corners). A *skeleton* is one writer's version of a style: the style's points moved, its width and
slant the writer's, all drawn from the skeleton's number, so a set that uses skeletons 0-5 never shares one with
a set that uses 6-9. A *pen* draws a skeleton: its width (ballpoint to marker), pressure along the stroke,
tremor, and the slant of the moment. A writer's *habit* picks one style per digit: the European one writes
1 with a flag and serif, 7 crossed, 4 open; the American one a plain 1 and 7, a closed 4.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

Point = tuple[float, float]
VERSION = 1  # bumped whenever a style, skeleton or pen draws differently: cached training digits are redrawn


@dataclass(frozen=True)
class Stroke:
    points: tuple[Point, ...]
    smooth: bool = True  # through its points on a Catmull-Rom curve; False: straight segments, corners kept


def _ellipse(cx: float, cy: float, rx: float, ry: float, start: float = -np.pi / 2, turns: float = 1.0, n: int = 12) -> tuple[Point, ...]:
    angles = start + 2 * np.pi * turns * np.arange(n + 1) / n
    return tuple((cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles)


def _s(*points: Point) -> Stroke:
    return Stroke(tuple(points))


def _p(*points: Point) -> Stroke:
    return Stroke(tuple(points), smooth=False)


# style name -> (digit, strokes)
STYLES: dict[str, tuple[str, tuple[Stroke, ...]]] = {
    "0": ("0", (Stroke(_ellipse(0.5, 0.5, 0.42, 0.5)),)),
    "0 slashed": ("0", (Stroke(_ellipse(0.5, 0.5, 0.42, 0.5)), _p((0.88, 0.05), (0.12, 0.95)))),
    "1": ("1", (_p((0.5, 0.0), (0.5, 1.0)),)),
    "1 long flag": ("1", (_p((0.05, 0.42), (0.55, 0.0), (0.55, 1.0)),)),
    "1 base serif": ("1", (_p((0.2, 0.22), (0.55, 0.0), (0.55, 1.0)), _p((0.15, 1.0), (0.95, 1.0)))),
    "2": ("2", (_s((0.1, 0.25), (0.35, 0.02), (0.72, 0.04), (0.88, 0.28), (0.6, 0.6), (0.1, 1.0)), _p((0.1, 1.0), (0.95, 0.98)))),
    "2 looped": ("2", (_s((0.1, 0.25), (0.35, 0.02), (0.72, 0.04), (0.88, 0.28), (0.6, 0.62), (0.22, 0.92), (0.1, 0.98),
                          (0.14, 0.82), (0.32, 0.86), (0.55, 0.97), (0.95, 0.96)),)),
    "3": ("3", (_s((0.12, 0.12), (0.48, 0.0), (0.86, 0.16), (0.78, 0.4), (0.4, 0.48), (0.86, 0.6), (0.9, 0.86), (0.5, 1.0), (0.1, 0.88)),)),
    "4 closed": ("4", (_p((0.72, 1.0), (0.72, 0.0), (0.05, 0.68), (0.95, 0.68)),)),
    "4 open": ("4", (_p((0.38, 0.0), (0.1, 0.62), (0.95, 0.62)), _p((0.74, 0.22), (0.74, 1.0)))),
    "5": ("5", (_p((0.88, 0.02), (0.22, 0.02), (0.17, 0.44)), _s((0.17, 0.44), (0.55, 0.36), (0.88, 0.58), (0.82, 0.9), (0.45, 1.0), (0.1, 0.88)))),
    "6": ("6", (_s((0.75, 0.02), (0.35, 0.3), (0.12, 0.7), (0.3, 0.98), (0.7, 0.96), (0.86, 0.72), (0.6, 0.52), (0.25, 0.6), (0.13, 0.74)),)),
    "6 curled top": ("6", (_s((0.92, 0.2), (0.72, 0.02), (0.4, 0.08), (0.2, 0.35), (0.12, 0.7), (0.3, 0.98), (0.7, 0.96), (0.86, 0.72),
                              (0.6, 0.52), (0.25, 0.6), (0.13, 0.74)),)),
    "7": ("7", (_p((0.06, 0.03), (0.94, 0.03), (0.38, 1.0)),)),
    "7 crossbar": ("7", (_p((0.06, 0.03), (0.94, 0.03), (0.38, 1.0)), _p((0.3, 0.52), (0.9, 0.5)))),
    "8": ("8", (_s((0.52, 0.47), (0.84, 0.24), (0.5, 0.0), (0.16, 0.24), (0.52, 0.47), (0.86, 0.74), (0.5, 1.0), (0.14, 0.74), (0.52, 0.47)),)),
    "9 straight tail": ("9", (Stroke(_ellipse(0.48, 0.28, 0.36, 0.28, start=0.0)), _p((0.84, 0.28), (0.8, 1.0)))),
    "9 curved tail": ("9", (Stroke(_ellipse(0.48, 0.28, 0.36, 0.28, start=0.0)), _s((0.84, 0.28), (0.8, 0.7), (0.55, 0.98), (0.18, 0.9)))),
}
HABITS: dict[str, dict[str, tuple[str, ...]]] = {  # habit -> digit -> the styles a writer of it uses (one each)
    "european": {"0": ("0", "0 slashed"), "1": ("1 long flag", "1 base serif"), "2": ("2", "2 looped"), "3": ("3",),
                 "4": ("4 open",), "5": ("5",), "6": ("6", "6 curled top"), "7": ("7 crossbar",), "8": ("8",),
                 "9": ("9 curved tail", "9 straight tail")},
    "american": {"0": ("0",), "1": ("1",), "2": ("2",), "3": ("3",), "4": ("4 closed", "4 open"), "5": ("5",), "6": ("6",),
                 "7": ("7",), "8": ("8",), "9": ("9 straight tail",)},
}
SKELETONS = 10  # writers (skeletons per style); training, validation and evaluation never share one:
TRAINING_WRITERS = range(0, 4)    # drawn into a run's training split (data.strokes)
VALIDATION_WRITERS = range(4, 6)  # how much of them to draw in is chosen on these (predict-eval --writers validation)
EVALUATION_WRITERS = range(6, 10)  # predict-eval's set
WRITERS = {"evaluation": EVALUATION_WRITERS, "validation": VALIDATION_WRITERS}  # predict-eval --writers


@dataclass(frozen=True)
class Skeleton:
    style: str
    number: int
    strokes: tuple[Stroke, ...]
    width: float  # of the box, as a fraction of its height
    slant: float  # the writer's: x moves by slant * (1 - y)


def skeleton(style: str, number: int) -> Skeleton:
    """Writer `number`'s version of `style`: every point moved a little, a width and a slant of their own, drawn from
    (style, number) alone."""
    rng = np.random.default_rng([sum(map(ord, style)), number, 31])
    strokes = tuple(Stroke(tuple((x + rng.normal(0, 0.035), y + rng.normal(0, 0.03)) for x, y in s.points), s.smooth)
                    for s in STYLES[style][1])
    return Skeleton(style, number, strokes, float(rng.uniform(0.45, 0.75)), float(rng.uniform(-0.06, 0.28)))


def _catmull_rom(points: np.ndarray, per_segment: int) -> np.ndarray:
    """A smooth curve through every point (its ends repeated as tangents)."""
    p = np.vstack([points[:1], points, points[-1:]])
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3))
    out.append(p[-2:-1])
    return np.vstack(out)


def _polyline(points: np.ndarray, per_segment: int) -> np.ndarray:
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    return np.vstack([a + (b - a) * t for a, b in zip(points[:-1], points[1:])] + [points[-1:]])


@dataclass(frozen=True)
class Pen:
    width: float    # the nib, as a fraction of the digit's height (ballpoint ~0.04, marker ~0.14)
    pressure: float  # how much the width swells and thins along a stroke (0: not at all)
    tremor: float   # the hand's wobble, as a fraction of the height
    slant: float    # added to the writer's slant


def random_pen(rng: np.random.Generator) -> Pen:
    return Pen(float(rng.uniform(0.035, 0.13)), float(rng.uniform(0.0, 0.35)), float(rng.uniform(0.0, 0.012)),
               float(rng.normal(0, 0.05)))


def draw(sk: Skeleton, height: int, pen: Pen, rng: np.random.Generator) -> Image.Image:
    """The skeleton in dark ink on white paper, `height` pixels tall, a margin of a pen's width around it."""
    scale = 2  # drawn at twice the size, then reduced: smooth edges
    h = height * scale
    slant = sk.slant + pen.slant
    radius = max(0.5, pen.width * h / 2)
    samples = []
    for stroke in sk.strokes:
        points = np.array(stroke.points, dtype=float)
        dense = (_catmull_rom if stroke.smooth else _polyline)(points, 40)
        wobble = np.cumsum(rng.normal(0, 1, dense.shape), axis=0)
        wobble = (wobble - np.linspace(0, 1, len(dense))[:, None] * wobble[-1]) / max(1.0, np.sqrt(len(dense)))
        dense = dense + pen.tremor * wobble
        x = (dense[:, 0] * sk.width + slant * (1 - dense[:, 1])) * h
        y = dense[:, 1] * h
        phase = rng.uniform(0, 2 * np.pi)
        widths = radius * (1 + pen.pressure * np.sin(np.linspace(0, np.pi, len(dense)) * 2 + phase))
        samples.append((x, y, widths))
    xs = np.concatenate([s[0] for s in samples])
    ys = np.concatenate([s[1] for s in samples])
    pad = int(np.ceil(radius * (1 + pen.pressure))) + 2
    x0, y0 = xs.min() - pad, ys.min() - pad
    canvas = Image.new("L", (int(xs.max() - x0 + pad) + 1, int(ys.max() - y0 + pad) + 1), 255)
    ink = ImageDraw.Draw(canvas)
    for x, y, widths in samples:
        for i in range(len(x)):  # round dabs every ~1 px along the stroke: a pen of varying width
            if i and np.hypot(x[i] - x[i - 1], y[i] - y[i - 1]) > widths[i] / 2:
                steps = int(np.hypot(x[i] - x[i - 1], y[i] - y[i - 1]) / max(widths[i] / 2, 0.5)) + 1
                for f in np.linspace(0, 1, steps, endpoint=False)[1:]:
                    cx, cy = x[i - 1] + f * (x[i] - x[i - 1]) - x0, y[i - 1] + f * (y[i] - y[i - 1]) - y0
                    ink.ellipse((cx - widths[i], cy - widths[i], cx + widths[i], cy + widths[i]), fill=0)
            cx, cy = x[i] - x0, y[i] - y0
            ink.ellipse((cx - widths[i], cy - widths[i], cx + widths[i], cy + widths[i]), fill=0)
    return canvas.resize((max(1, canvas.width // scale), max(1, canvas.height // scale)), Image.Resampling.LANCZOS)


def styles_of(digit: str) -> list[str]:
    return [name for name, (d, _) in STYLES.items() if d == digit]


def training_digits(count: int, seed: int, writers: range = TRAINING_WRITERS) -> tuple[np.ndarray, np.ndarray]:
    """`count` stroke-drawn digits framed as MNIST's (uint8 (N, 28, 28), light on black) and their labels: each a
    digit drawn uniformly, one of its styles uniformly, one of `writers`, a pen of its own; from `seed` alone."""
    from digits_bench.data.mnist_frame import to_mnist

    rng = np.random.default_rng([seed, 17])  # a stream of its own: never the evaluation set's (seeded by its seed alone)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, count)
    for i, label in enumerate(labels):
        style = str(rng.choice(styles_of(str(label))))
        page = draw(skeleton(style, int(rng.choice(writers))), int(rng.integers(40, 90)), random_pen(rng), rng)
        images[i] = to_mnist(1.0 - np.asarray(page, dtype=np.float32) / 255)
    return images, labels.astype(np.int64)

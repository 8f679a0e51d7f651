"""Photos and scans of handwritten digits -> 28×28 crops made the way MNIST was made.

MNIST digits are light ink on black: the ink's bounding box scaled to fit 20×20 keeping its
aspect, placed in 28×28 with the centre of mass at the centre. A model trained on MNIST reads
other handwriting well only once it looks like that, so every input is brought there:
grayscale, ink made light (inverted when it is dark on light paper), lighting flattened,
thresholded, split into digits left to right, and each digit scaled and centred.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage as ndi

from digits_bench.data.mnist_frame import BOX, to_mnist
from digits_bench.errors import ImageError

MAX_SIDE = 1200        # larger photos are analysed downscaled: digits stay far larger than 20 px
# MNIST's pen, measured at the 20-px scale (stroke_width of its training digits above grey 128): 5th percentile
# 2.1 px, median 2.8, 95th 4.2. A pen outside that range is brought to the edge of it.
MIN_STROKE = 1.8       # px at the 20-px scale; thinner pen strokes are thickened
MAX_STROKE = 4.2       # ... and thicker ones (a marker) thinned
MIN_CONTRAST = 24.0    # grey levels between paper and ink below which an image holds no ink
SPECK_AREA = 0.02      # components smaller than this fraction of the largest are noise,
SPECK_SIZE = 0.15      # ... and so are those whose longer side is below this fraction of its height
DIGIT_AREA = 0.08      # merged groups smaller than this fraction of the largest group are not digits
DIGIT_HEIGHT = 0.4     # ... nor groups shorter than this fraction of its height (dots, dashes)
MERGE_OVERLAP = 0.5    # pieces whose x-extents overlap by this much of the narrower one are one digit,
MERGE_GAP = 0.3        # ... when no farther apart vertically than this much of the taller one
HYSTERESIS = 0.5       # ink fainter than the threshold, down to this fraction of it, joins the ink it touches


@dataclass(frozen=True)
class Switches:
    """The preprocessing steps that can be switched on or off: `make predict-eval RUN=<id> ARGS=--ablate` reads the set with
    each one flipped (results/predict-eval-<run>-steps.md). On by default only where it helps, for a 2-epoch
    LeNet and for the reader run alike (seed 0's set v2, 200 singles and 50 rows per condition)."""
    thicken: bool = False     # a thin pen's strokes grown to MIN_STROKE: off, the set reads better without it
                              # (reader +0.35 pt single digits without; LeNet +0.15 pt single, -0.4 pt rows)
    thin: bool = False        # a marker's strokes shrunk to MAX_STROKE: off, no better with it (reader -0.05 pt
                              # single digits, -1.2 pt rows; LeNet -0.15 pt single, +0.2 pt rows)
    keep_aspect: bool = True  # the ink's longer side to 20 px, as MNIST: a 1 stays narrow, not a square blob
                              # (+9.1 pt single digits for LeNet, +3.9 pt for the reader run)


DEFAULT_SWITCHES = Switches()


@dataclass
class Digit:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) in the original image's pixels
    crop: np.ndarray                # (28, 28) uint8, light ink on black: what the model sees


@dataclass
class Page:
    image: Image.Image  # RGB at the analysed resolution; --save draws on it
    zoom: float         # analysed size / original size
    inverted: bool      # True when the ink was dark on light paper
    digits: list[Digit]


def check_file(path: Path) -> None:
    """What a path tells without reading it: there, a file, not empty; a clear ImageError otherwise."""
    if not path.exists():
        raise ImageError("no such file")
    if path.is_dir():
        raise ImageError("is a directory, not an image")
    if path.stat().st_size == 0:
        raise ImageError("empty file (0 bytes)")


def open_image(path: Path) -> Image.Image:
    """Any file Pillow reads, upright as the camera held it; a clear ImageError for anything else."""
    check_file(path)
    try:
        with Image.open(path) as img:
            img.load()
            return ImageOps.exif_transpose(img)
    except UnidentifiedImageError:
        raise ImageError("not an image (Pillow cannot read this format)") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageError(f"damaged or truncated image ({err})") from None


def to_gray(img: Image.Image) -> tuple[np.ndarray, Image.Image]:
    """(float grey levels 0-255, RGB copy), both at most MAX_SIDE on the long side.

    Transparent pixels become white paper: drawing apps export dark strokes on transparency.
    """
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit and float scans: stretch to 0-255
        arr = np.asarray(img, dtype=np.float32)
        span = float(arr.max() - arr.min()) or 1.0
        img = Image.fromarray(((arr - arr.min()) * (255.0 / span)).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    rgb = img.convert("RGB")
    if max(rgb.size) > MAX_SIDE:
        rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(rgb.convert("L"), dtype=np.float32), rgb


def _terms(y: np.ndarray, x: np.ndarray) -> list[np.ndarray]:
    """The quadratic surface's terms 1, x, y, x², xy, y² (x, y in [-1, 1])."""
    return [np.ones_like(x * y), x, y, x * x, x * y, y * y]


def paper_level(ink: np.ndarray) -> np.ndarray:
    """The paper's own level under the ink (in ink units: ink lies above it), a smooth quadratic surface.

    Uneven light on a photographed page is a slow gradient; ink is small, sharp and on one side
    of it. The fit starts flat at the 25th percentile (paper fills most of any page), then
    refits on the pixels within 2.5 sigma above it, sigma measured below the surface where no
    ink can be. It runs on a ~64 px thumbnail, so strokes of any width are alike to it.
    """
    h, w = ink.shape
    step = max(1, max(h, w) // 64)
    small = ink[: h - h % step or h, : w - w % step or w]
    small = small.reshape(small.shape[0] // step, step, small.shape[1] // step, step).mean(axis=(1, 3))
    y, x = np.meshgrid(np.linspace(-1, 1, small.shape[0]), np.linspace(-1, 1, small.shape[1]), indexing="ij")
    design, values = np.stack([t.ravel() for t in _terms(y, x)], axis=1), small.ravel()
    coef = np.array([np.percentile(values, 25), 0, 0, 0, 0, 0], dtype=np.float64)
    for _ in range(5):
        residual = values - design @ coef
        below = -residual[residual < 0]
        sigma = 1.4826 * float(np.median(below)) + 0.5 if below.size else 0.5
        keep = residual < 2.5 * sigma
        coef, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
    terms = _terms(np.linspace(-1, 1, h)[:, None], np.linspace(-1, 1, w)[None, :])
    return sum(c * t for c, t in zip(coef, terms)).astype(np.float32)


def ink_above_paper(gray: np.ndarray) -> tuple[bool, np.ndarray]:
    """(ink is dark, ink above the paper level): the polarity whose ink stands out farther from its paper.

    Fitting the paper under each polarity and comparing how far the strongest ink rises above
    it holds on unevenly lit pages, where the brightest and darkest paper differ more than ink.
    """
    flats = [(dark, ink - paper_level(ink)) for dark, ink in ((True, 255.0 - gray), (False, gray))]
    return max(flats, key=lambda f: float(f[1].max()))


def otsu(values: np.ndarray) -> float:
    """The grey level that best splits values into two classes (Otsu, 1979)."""
    hist, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mean0 = m0 / np.maximum(w0, 1)
    mean1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mean0 - mean1) ** 2
    return float(centres[int(np.argmax(between[:-1]))])


def ink_components(flat: np.ndarray, strong: float, noise: float) -> tuple[np.ndarray, int]:
    """Which ink belongs together, by hysteresis: pixels above `strong` (Otsu's threshold), joined through the fainter
    ink they touch down to HYSTERESIS of it (never into the noise): a hairline pen's thin stretches keep a digit's
    pieces one digit instead of pieces too small to count. A digit's strokes are still its pixels above `strong`."""
    faint = flat > max(HYSTERESIS * strong, 4 * noise)
    labels, n = ndi.label(faint, structure=np.ones((3, 3)))
    has_core = np.zeros(n + 1, dtype=bool)
    has_core[np.unique(labels[flat > strong])] = True
    has_core[0] = False
    return ndi.label(has_core[labels], structure=np.ones((3, 3)))


def _groups(boxes: np.ndarray, pixels: list[np.ndarray]) -> list[list[int]]:
    """Indices of components that form one digit: a broken stroke leaves pieces one above the other.

    Pieces merge when their x-extents overlap by MERGE_OVERLAP of the narrower one and the
    vertical gap between them is at most MERGE_GAP of the taller one, unless they stand side by
    side with blank columns between them (`_apart`): two digits of a slanted row overlap in x by
    their boxes, not by their ink.
    """
    groups = [[i] for i in range(len(boxes))]
    x0, y0, x1, y1 = (boxes[:, k].astype(float) for k in range(4))
    points = list(pixels)
    apart: set[tuple[int, int]] = set()  # pairs of groups (by their first component) known to stand apart
    while len(groups) > 1:
        overlap = np.minimum.outer(x1, x1) - np.maximum.outer(x0, x0)
        narrower = np.minimum.outer(x1 - x0, x1 - x0)
        gap = np.maximum.outer(y0, y0) - np.minimum.outer(y1, y1)
        taller = np.maximum.outer(y1 - y0, y1 - y0)
        close = (overlap >= MERGE_OVERLAP * narrower) & (gap <= MERGE_GAP * taller)
        np.fill_diagonal(close, False)
        pair = None
        for i, j in np.argwhere(np.triu(close)):
            key = (groups[i][0], groups[j][0])
            if key in apart:
                continue
            if _apart(points[i], points[j]):
                apart.add(key)
                continue
            pair = (int(i), int(j))
            break
        if pair is None:
            break
        i, j = pair
        groups[i] += groups.pop(j)
        points[i] = np.vstack([points[i], points.pop(j)])
        x0[i], y0[i], x1[i], y1[i] = min(x0[i], x0[j]), min(y0[i], y0[j]), max(x1[i], x1[j]), max(y1[i], y1[j])
        x0, y0, x1, y1 = (np.delete(v, j) for v in (x0, y0, x1, y1))
    return groups


SHEARS = np.linspace(-0.6, 0.6, 25)  # the slants of writing a row may have, as x per y
SIDE_BY_SIDE = 0.5    # pieces whose heights overlap by this much of the shorter one stand side by side ...
BLANK_COLUMNS = 0.06  # ... and are two digits when, at some slant, this much of the taller one's height is blank between them


def _apart(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether pieces `a` and `b` ((row, col) pixels) are two digits: side by side, and, looked at along some slant
    of writing, separated by blank columns. A broken stroke's pieces stand one above the other; a crossbar or a
    flag lies across its digit's ink at every slant."""
    top, bottom = max(a[:, 0].min(), b[:, 0].min()), min(a[:, 0].max(), b[:, 0].max())
    heights = np.ptp(a[:, 0]) + 1, np.ptp(b[:, 0]) + 1
    if bottom - top + 1 < SIDE_BY_SIDE * min(heights):
        return False
    blank = BLANK_COLUMNS * max(heights)
    for shear in SHEARS:
        xa, xb = a[:, 1] - shear * a[:, 0], b[:, 1] - shear * b[:, 0]
        if xa.min() - xb.max() > blank or xb.min() - xa.max() > blank:
            return True
    return False


def stroke_width(mask: np.ndarray) -> float:
    """Mean pen width in pixels: area over half the outline (a stroke of width w, length L: wL / L)."""
    outline = np.count_nonzero(mask & ~ndi.binary_erosion(mask))
    return 2.0 * np.count_nonzero(mask) / max(outline, 1)


def thinned(mask: np.ndarray, shrink: float) -> np.ndarray:
    """The strokes `shrink` px narrower on each side, never broken: where a stroke is narrower than the rest
    (a joint, a hairline) its middle line stays, one pixel wide, so the digit keeps its shape."""
    depth = ndi.distance_transform_edt(mask)
    ridge = mask & (depth >= ndi.maximum_filter(depth, size=3) - 0.5)  # the strokes' middle lines
    return (depth > shrink) | ridge


def _digit_ink(flat: np.ndarray, member: np.ndarray, floor: float, edge: int, steps: Switches = DEFAULT_SWITCHES) -> np.ndarray:
    """One digit's ink in 0-1: its own soft grey levels near its strokes, or, for a pen far from MNIST's,
    its strokes redrawn at the nearest width MNIST has."""
    rows, cols = np.nonzero(member)
    height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
    scale = BOX / max(height, width)
    width_px = stroke_width(member)
    if steps.thicken and width_px * scale < MIN_STROKE:  # a fine pen on a big digit would vanish at 20 px
        grow = (MIN_STROKE / scale - width_px) / 2
        pad = int(np.ceil(grow)) + 1
        member = np.pad(member, pad)
        return (ndi.distance_transform_edt(~member) <= grow).astype(np.float32)
    if steps.thin and width_px * scale > MAX_STROKE:  # a marker closes loops: a 6 becomes a blob, an 8 a 0
        return thinned(member, (width_px - MAX_STROKE / scale) / 2).astype(np.float32)
    level = float(np.percentile(flat[member], 90))
    near = ndi.binary_dilation(member, iterations=edge)
    return np.clip((flat - floor) / max(level - floor, 1e-6), 0.0, 1.0) * near


@dataclass
class _Group:
    labels: list[int]                # component labels (1-based) that make this digit
    box: tuple[int, int, int, int]   # x0, y0, x1, y1 in analysed pixels
    area: int


def _digit_groups(labels: np.ndarray, n: int) -> list[_Group]:
    """Components -> digits: specks dropped, broken strokes merged, dots and dashes dropped, left to right."""
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    slices = ndi.find_objects(labels)
    largest = slices[int(np.argmax(areas))]
    min_side = SPECK_SIZE * (largest[0].stop - largest[0].start)
    kept = [i for i in range(n) if areas[i] >= max(SPECK_AREA * areas.max(), 4)
            and max(slices[i][0].stop - slices[i][0].start, slices[i][1].stop - slices[i][1].start) >= min_side]
    if not kept:
        return []
    boxes = np.array([[slices[i][1].start, slices[i][0].start, slices[i][1].stop, slices[i][0].stop] for i in kept])
    pixels = [np.argwhere(labels[slices[i]] == i + 1)[:: max(1, int(areas[i]) // 600)] + (slices[i][0].start, slices[i][1].start)
              for i in kept]  # at most ~600 points a piece: enough to see a blank gap
    groups = []
    for members in _groups(boxes, pixels):
        b = boxes[members]
        box = (int(b[:, 0].min()), int(b[:, 1].min()), int(b[:, 2].max()), int(b[:, 3].max()))
        groups.append(_Group([kept[k] + 1 for k in members], box, int(areas[[kept[k] for k in members]].sum())))
    ref = max(groups, key=lambda g: g.area)
    ref_height = ref.box[3] - ref.box[1]
    digits = [g for g in groups if g.area >= DIGIT_AREA * ref.area and g.box[3] - g.box[1] >= DIGIT_HEIGHT * ref_height]
    return sorted(digits, key=lambda g: g.box[0] + g.box[2])


def segment(gray: np.ndarray, steps: Switches = DEFAULT_SWITCHES) -> tuple[bool, list[tuple[tuple[int, int, int, int], np.ndarray]]]:
    """(ink was dark, [(box in analysed pixels, 28×28 crop)] left to right); ImageError when there is no ink.

    Finding the ink works on a smoothed copy (sensor and JPEG noise would break strokes and
    add specks); the crops take their grey levels from the unsmoothed one, as sharp as given.
    """
    sigma = float(np.clip(max(gray.shape) / 400, 0.7, 2.5))
    smooth = ndi.gaussian_filter(gray, sigma)
    dark, flat = ink_above_paper(smooth)  # ~0 on paper, positive on ink
    sharp = flat + (smooth - gray if dark else gray - smooth)  # the same, unsmoothed
    below = -flat[flat < 0]  # paper only: ink cannot lie below the paper, so this is pure noise
    noise = 1.4826 * float(np.median(below)) if below.size else 0.0
    if float(flat.max()) < max(MIN_CONTRAST, 6 * noise):
        raise ImageError("no ink found (blank or nearly uniform image)")
    strong = max(otsu(flat), 5 * noise)
    labels, n = ink_components(flat, strong, noise)
    groups = _digit_groups(labels, n)
    if not groups:
        raise ImageError("no ink found (only specks)")
    floor = max(3 * noise, 0.05 * float(flat.max()))
    edge = max(1, round(2 * sigma))
    crops = []
    for g in groups:
        x0, y0, x1, y1 = g.box
        window = (slice(max(0, y0 - edge), y1 + edge), slice(max(0, x0 - edge), x1 + edge))
        member = np.isin(labels[window], g.labels) & (flat[window] > strong)  # its strokes; faint ink joins as grey
        crops.append((g.box, to_mnist(_digit_ink(sharp[window], member, floor, edge, steps), steps.keep_aspect)))
    return dark, crops


def read_page(path: Path, steps: Switches = DEFAULT_SWITCHES) -> Page:
    """One image file -> its digits, left to right, each as the model must see it."""
    img = open_image(path)
    original_size = img.size
    gray, rgb = to_gray(img)
    dark, found = segment(gray, steps)
    zoom = rgb.size[0] / original_size[0]
    digits = [Digit(tuple(int(round(v / zoom)) for v in box), crop) for box, crop in found]  # type: ignore[misc]
    return Page(rgb, zoom, dark, digits)

"""How MNIST framed a digit, for any ink that is to look like MNIST's: the ink's box scaled into 20×20 keeping
its aspect, placed in 28×28 with its centre of mass at the centre. predict frames the digits it cuts from a page
this way; the stroke-drawn training digits are framed the same way."""
from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

BOX, FIELD = 20, 28  # MNIST: ink scaled into 20×20, centred by mass in 28×28


def to_mnist(ink: np.ndarray, keep_aspect: bool = True) -> np.ndarray:
    """Ink in 0-1, light on black, tight or not -> (28, 28) uint8 as MNIST: 20 px box, mass-centred."""
    rows, cols = np.nonzero(ink > 0.02)
    if rows.size == 0:  # cannot happen for a kept component (its core is above the threshold); no crash if it does
        return np.zeros((FIELD, FIELD), dtype=np.uint8)
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = ink.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale))) if keep_aspect else (BOX, BOX)
    method = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR  # BOX: area-averaging antialias
    small = np.asarray(Image.fromarray(ink.astype(np.float32)).resize(size, method))
    core = small[small > 0.1]
    small = np.clip(small / max(float(np.percentile(core, 98)) if core.size else 1.0, 0.25), 0.0, 1.0)
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    top, left = (FIELD - size[1]) // 2, (FIELD - size[0]) // 2
    field[top : top + size[1], left : left + size[0]] = small
    cy, cx = ndi.center_of_mass(field)
    field = ndi.shift(field, (round(FIELD / 2 - cy), round(FIELD / 2 - cx)), order=0, mode="constant")
    return np.round(field * 255).astype(np.uint8)

"""Reading an image: segment it into MNIST-like crops, classify all of them in one forward pass."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from digits_bench.models.digits_net import DigitsNet
from digits_bench.predict.preprocess import DEFAULT_SWITCHES, Page, Switches, read_page


@dataclass
class DigitReading:
    digit: int
    prob: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the original image's pixels
    crop: np.ndarray                # (28, 28) uint8: what the model saw


@dataclass
class Reading:
    file: str
    text: str
    digits: list[DigitReading]
    page: Page

    def as_dict(self) -> dict:
        return {"file": self.file, "text": self.text, "inverted": self.page.inverted,
                "digits": [{"digit": d.digit, "prob": round(d.prob, 4), "box": list(d.box)} for d in self.digits]}


@torch.no_grad()
def classify(module: DigitsNet, crops: np.ndarray, tta: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(top class, its probability) for uint8 crops (N, 28, 28), normalised exactly as in training; with `tta`
    averaged over the crop and its one-pixel shifts (the ensembles' test-time augmentation)."""
    from digits_bench.predict.inference import probabilities

    top, digit = probabilities(module, torch.from_numpy(crops), tta).max(dim=1)
    return digit.numpy(), top.numpy()


def read_image(module: DigitsNet, path: Path, tta: bool = False, steps: Switches = DEFAULT_SWITCHES) -> Reading:
    """The digits of one image file as a string, left to right; raises ImageError when it cannot be read."""
    page = read_page(path, steps)
    digits, probs = classify(module, np.stack([d.crop for d in page.digits]), tta)
    readings = [DigitReading(int(y), float(p), d.box, d.crop) for y, p, d in zip(digits, probs, page.digits)]
    return Reading(str(path), "".join(str(r.digit) for r in readings), readings, page)

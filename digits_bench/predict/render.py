"""`--save DIR`: the image with a box and the prediction on each digit, and the 28×28 crops the model saw.

Seeing the crops is how one tells a segmentation problem (a split or merged digit, a speck
read as a digit) from a model mistake.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from digits_bench.predict.reader import Reading

BOX_COLOUR, TEXT_COLOUR = (220, 30, 30), (255, 255, 255)


def annotate(reading: Reading) -> Image.Image:
    """The analysed image with each digit boxed and labelled `<digit> <probability>`."""
    image = reading.page.image.copy()
    draw = ImageDraw.Draw(image)
    zoom, line = reading.page.zoom, max(1, round(max(image.size) / 400))
    heights = [d.box[3] - d.box[1] for d in reading.digits]
    font = ImageFont.load_default(size=max(10, round(0.25 * zoom * max(heights))))
    right_of_last_above = -1
    for d in reading.digits:
        x0, y0, x1, y1 = (round(v * zoom) for v in d.box)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=BOX_COLOUR, width=line)
        label = f"{d.digit} {d.prob:.0%}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        width, height = right - left + 2 * line, bottom - top + 2 * line
        above = y0 - height >= 0 and x0 > right_of_last_above  # below the box when it would cover a neighbour's label
        ty = y0 - height if above else y1
        right_of_last_above = x0 + width if above else right_of_last_above
        draw.rectangle((x0, ty, x0 + width, ty + height), fill=BOX_COLOUR)
        draw.text((x0 + line - left, ty + line - top), label, fill=TEXT_COLOUR, font=font)
    return image


def save_reading(reading: Reading, out_dir: Path, stem: str) -> list[Path]:
    """Write `<stem>_annotated.png` and `<stem>_digit<i>_<prediction>.png` (28×28); return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}_annotated.png"]
    annotate(reading).save(paths[0])
    for i, d in enumerate(reading.digits):
        paths.append(out_dir / f"{stem}_digit{i}_{d.digit}.png")
        Image.fromarray(d.crop).save(paths[-1])
    return paths

"""Regenerate the bundled sample images and ``samples.jsonl`` (deterministic: shapes are drawn from exact masks).

    python -m tokcompress.study.data.make_samples [OUT_DIR]

Each image is 64x64, one flat-coloured shape on a grey background, so the PNGs stay a few hundred
bytes. Half the samples ask for the shape's name or colour (``answer``), half for its box (``box``),
so both labelled metrics have something to score.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

SIZE = 64
BACKGROUND = (200, 200, 200)
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30)}

# (id, shape, colour, centre x, centre y, half size, question kind)
SPECS = [
    ("shape-circle", "circle", "red", 20, 22, 12, "shape"),
    ("shape-square", "square", "blue", 42, 40, 13, "shape"),
    ("shape-triangle", "triangle", "green", 32, 44, 14, "shape"),
    ("colour-cross", "cross", "yellow", 24, 40, 12, "colour"),
    ("box-circle", "circle", "blue", 44, 20, 10, "box"),
    ("box-square", "square", "green", 18, 46, 9, "box"),
    ("box-triangle", "triangle", "red", 40, 36, 15, "box"),
    ("box-cross", "cross", "red", 30, 28, 11, "box"),
]


def shape_mask(shape: str, cx: int, cy: int, r: int) -> np.ndarray:
    """Boolean ``[SIZE, SIZE]`` mask of the shape centred at (cx, cy) with half size r."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    dx, dy = x - cx, y - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if shape == "triangle":  # apex up: rows from cy - r to cy + r, half width grows linearly
        inside_rows = (dy >= -r) & (dy <= r)
        return inside_rows & (2 * np.abs(dx) <= dy + r)
    if shape == "cross":
        bar = max(1, r // 3)
        return ((np.abs(dx) <= r) & (np.abs(dy) <= bar)) | ((np.abs(dy) <= r) & (np.abs(dx) <= bar))
    raise ValueError(f"unknown shape {shape!r}")


def render(shape: str, colour: str, cx: int, cy: int, r: int) -> tuple[np.ndarray, list[float]]:
    """RGB uint8 image and the tight pixel box ``[x1, y1, x2, y2]`` (x2, y2 exclusive) of the shape."""
    mask = shape_mask(shape, cx, cy, r)
    img = np.empty((SIZE, SIZE, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    img[mask] = COLOURS[colour]
    ys, xs = np.nonzero(mask)
    return img, [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def records() -> list[tuple[dict, np.ndarray]]:
    out = []
    for sid, shape, colour, cx, cy, r, kind in SPECS:
        img, box = render(shape, colour, cx, cy, r)
        rec: dict = {"id": sid, "image": f"samples/{sid}.png"}
        if kind == "shape":
            rec |= {"prompt": "What shape is in the image? Answer with one word.", "answer": shape}
        elif kind == "colour":
            rec |= {"prompt": "What colour is the shape? Answer with one word.", "answer": [colour]}
        else:
            rec |= {"prompt": f"Give the bounding box of the {colour} {shape} as [x1, y1, x2, y2] in pixels.", "box": box}
        out.append((rec, img))
    return out


def write(out_dir: Path) -> None:
    from PIL import Image

    (out_dir / "samples").mkdir(parents=True, exist_ok=True)
    lines = []
    for rec, img in records():
        Image.fromarray(img).quantize(colors=4, method=Image.Quantize.FASTOCTREE).save(out_dir / rec["image"], optimize=True)
        lines.append(json.dumps(rec))
    (out_dir / "samples.jsonl").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)

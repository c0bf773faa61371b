"""A picture of what each pruner keeps: the image once per configuration, kept patches bright, dropped ones dimmed.

Kept positions come from `PruningHandle.last_selection` (sequence positions) and are mapped onto the
image through the prompt's `Layout`. The first grid of the layout is drawn over the whole image (a
single-image model's only grid, LLaVA-NeXT's base view, the first tile); tokens of later grids
(crops, further tiles, frames) are not drawn. PIL only: no plotting library needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..layout import Grid, Layout

__all__ = ["kept_cells", "draw_overlay", "visual_indices"]

PANEL = 224
"""Side of one panel in pixels."""
DIM = 0.25
"""Brightness of dropped patches (1 = unchanged)."""


def visual_indices(input_ids: torch.Tensor, image_token_id: int, positions: torch.Tensor) -> torch.Tensor:
    """Sequence positions of kept tokens (one row) -> their index among the row's visual tokens."""
    visual = (input_ids == image_token_id).nonzero().flatten()
    return torch.searchsorted(visual, positions.to(visual.device))


def kept_cells(layout: Layout, kept: torch.Tensor | None) -> tuple[Grid, torch.Tensor]:
    """The drawn grid and a ``[rows, cols]`` bool map of its kept cells (all True when `kept` is None)."""
    grid = layout.grids[0]
    start = 0
    for seg in layout.segments:
        if seg is grid:
            break
        start += seg.num_tokens
    cols = grid.cols + int(grid.newline)
    cells = torch.zeros(grid.rows, grid.cols, dtype=torch.bool)
    if kept is None:
        return grid, cells.fill_(True)
    local = kept[(kept >= start) & (kept < start + grid.num_tokens)] - start
    r, c = local // cols, local % cols
    on_grid = c < grid.cols  # newline tokens are not patches
    cells[r[on_grid], c[on_grid]] = True
    return grid, cells


def draw_overlay(image, layout: Layout, panels: Sequence[tuple[str, torch.Tensor | None]], path: str | Path,
                 box: Sequence[float] | None = None):
    """Write a PNG of `image` once per panel ``(title, kept visual indices or None for everything)``.

    `box` ``(x1, y1, x2, y2)`` in the image's pixels is outlined in every panel (e.g. the object asked for).
    Returns the composed PIL image.
    """
    from PIL import Image, ImageDraw, ImageFont

    base = image.convert("RGB").resize((PANEL, PANEL), Image.BICUBIC)
    font = ImageFont.load_default(size=14)
    title_h, gap = 22, 8
    out = Image.new("RGB", (len(panels) * (PANEL + gap) + gap, PANEL + title_h + 2 * gap), "white")
    draw = ImageDraw.Draw(out)
    sx, sy = PANEL / image.width, PANEL / image.height
    for i, (title, kept) in enumerate(panels):
        grid, cells = kept_cells(layout, kept)
        mask = Image.fromarray((cells.numpy().astype("uint8") * 255), "L").resize((PANEL, PANEL), Image.NEAREST)
        dimmed = Image.eval(base, lambda v: int(v * DIM))
        panel = Image.composite(base, dimmed, mask)
        x0, y0 = gap + i * (PANEL + gap), gap + title_h
        out.paste(panel, (x0, y0))
        pd = ImageDraw.Draw(out)
        cw, ch = PANEL / grid.cols, PANEL / grid.rows
        for r, c in cells.nonzero().tolist() if kept is not None else []:
            pd.rectangle([x0 + c * cw, y0 + r * ch, x0 + (c + 1) * cw - 1, y0 + (r + 1) * ch - 1], outline=(255, 220, 0))
        if box is not None:
            x1, y1, x2, y2 = box
            pd.rectangle([x0 + x1 * sx, y0 + y1 * sy, x0 + x2 * sx, y0 + y2 * sy], outline=(0, 230, 90), width=2)
        count = int(cells.sum()) if kept is not None else grid.rows * grid.cols
        draw.text((x0, gap), f"{title} ({count}/{grid.rows * grid.cols})", fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path)
    return out

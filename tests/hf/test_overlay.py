"""The kept-patches picture: kept cells bright where the indices say, dropped ones dimmed, newlines skipped."""

from __future__ import annotations

import torch
from PIL import Image

from tokcompress.hf.overlay import DIM, PANEL, draw_overlay, kept_cells, visual_indices
from tokcompress.layout import Grid, Layout, OffGrid


def test_kept_cells_map_indices_row_major_and_skip_newlines():
    grid, cells = kept_cells(Layout.grid(2, 3), torch.tensor([0, 4]))
    assert cells.tolist() == [[True, False, False], [False, True, False]]
    # CLS first, then a 2x2 grid with a newline token per row: index 1 is (0, 0), index 3 the newline, 5 is (1, 1)
    layout = Layout((OffGrid(1, "cls"), Grid(2, 2, newline=True)))
    grid, cells = kept_cells(layout, torch.tensor([0, 1, 3, 5]))
    assert (grid.rows, grid.cols) == (2, 2) and cells.tolist() == [[True, False], [False, True]]


def test_visual_indices_count_only_image_tokens():
    ids = torch.tensor([5, 9, 9, 7, 9, 9])
    assert visual_indices(ids, 9, torch.tensor([2, 5])).tolist() == [1, 3]


def test_picture_brightens_exactly_the_kept_cells(tmp_path):
    image = Image.new("RGB", (40, 40), (200, 200, 200))
    out = draw_overlay(image, Layout.grid(2, 2), [("none", None), ("one", torch.tensor([3]))], tmp_path / "o.png")
    assert (tmp_path / "o.png").is_file() and out.size == (2 * (PANEL + 8) + 8, PANEL + 22 + 16)
    x0, y0 = 8 + PANEL + 8, 8 + 22  # second panel's corner
    quarter = PANEL // 4
    kept = out.getpixel((x0 + 3 * quarter, y0 + 3 * quarter))  # cell (1, 1)'s centre
    dropped = out.getpixel((x0 + quarter, y0 + quarter))  # cell (0, 0)
    assert kept == (200, 200, 200) and dropped == (int(200 * DIM),) * 3
    assert out.getpixel((8 + quarter, y0 + quarter)) == (200, 200, 200)  # "none" keeps everything

"""Layouts derived from model inputs, with hand-worked expectations."""

from __future__ import annotations

import pytest
import torch

from tokcompress.errors import InputError
from tokcompress.hf.layout import (
    llava_next_image_layout,
    qwen_image_layout,
    row_layouts,
    square_layout,
    tiles_layout,
    visual_runs,
)
from tokcompress.hf.tiny import tiny_config
from tokcompress.layout import Grid, Layout, OffGrid


def test_square_and_cls_layouts():
    assert square_layout(16) == Layout((Grid(4, 4),))
    assert square_layout(577) == Layout((OffGrid(1, "cls"), Grid(24, 24)))
    with pytest.raises(InputError, match="not a square"):
        square_layout(15)


def test_llava_next_anyres_crops_with_newlines():
    cfg = tiny_config("llava_next")  # 56 px tiles of 4x4 patches; pinpoints 56x56 .. 112x112
    # 100x20 (h x w) picks the 112x56 pinpoint: 2x1 crops = an 8x4 patch grid. The image is narrower
    # (20/100 < 4/8): width round(20 * 8/100) = 2, padding (4 - 2) // 2 = 1 column each side -> 8x2.
    lay = llava_next_image_layout(cfg, (100, 20))
    assert lay.segments == (Grid(4, 4, "base"), Grid(8, 2, "crop", newline=True))
    assert lay.num_tokens == 16 + 8 * 3
    # 100x60: new height round(100 * 4/60) = 7 leaves padding (8 - 7) // 2 = 0, so nothing is trimmed
    assert llava_next_image_layout(cfg, (100, 60)).segments[1] == Grid(8, 4, "crop", newline=True)
    # a square image uses the 56x56 pinpoint: base grid plus one 4x4 crop with newlines
    assert llava_next_image_layout(cfg, (56, 56)).segments == (Grid(4, 4, "base"), Grid(4, 4, "crop", newline=True))


def test_qwen_grid_frames_and_errors():
    assert qwen_image_layout([1, 8, 6], 2) == Layout((Grid(4, 3),))
    assert qwen_image_layout([2, 4, 4], 2) == Layout((Grid(2, 2, "frame"), Grid(2, 2, "frame")))
    with pytest.raises(InputError, match="spatial_merge_size"):
        qwen_image_layout([1, 5, 4], 2)


def test_tiles_mark_the_thumbnail():
    assert tiles_layout(1, 4) == Layout((Grid(2, 2, "tile"),))
    assert [g.kind for g in tiles_layout(3, 4).grids] == ["tile", "tile", "thumbnail"]
    assert [g.kind for g in tiles_layout(3, 4, thumbnail=False).grids] == ["tile"] * 3


def test_visual_runs():
    v = torch.tensor([[0, 1, 1, 0, 1, 0], [1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    assert visual_runs(v) == [[2, 1], [4], []]


def test_row_layouts_consume_images_in_row_order():
    a, b = Layout.grid(2), Layout.grid(1, 3)
    out = row_layouts([7, 0, 4], [a, b, a])
    assert out[0].segments == (Grid(2, 2), Grid(1, 3)) and out[1] is None and out[2] == a
    with pytest.raises(InputError, match="describe only"):
        row_layouts([9], [a])
    with pytest.raises(InputError, match="describes 7|describe 7|its images describe"):
        row_layouts([5], [a, b])
    with pytest.raises(InputError, match="images given"):
        row_layouts([4], [a, a])

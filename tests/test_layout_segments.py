"""Layout coordinates for grids, newline tokens and off-grid tokens."""

from __future__ import annotations

import pytest

from tokcompress import Grid, Layout, OffGrid


def test_single_grid_is_row_major():
    coords = Layout.grid(2, 3).coords().tolist()
    assert coords == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 0], [0, 1, 1], [0, 1, 2]]


def test_newline_tokens_are_off_grid_and_segments_are_numbered():
    layout = Layout((Grid(1, 2, kind="base"), Grid(2, 2, kind="crop", newline=True), OffGrid(1, kind="sep")))
    assert layout.num_tokens == 2 + 2 * 3 + 1
    assert layout.coords().tolist() == [
        [0, 0, 0], [0, 0, 1],
        [1, 0, 0], [1, 0, 1], [1, -1, -1],
        [1, 1, 0], [1, 1, 1], [1, -1, -1],
        [2, -1, -1],
    ]
    assert layout.describe() == "base 1x2 | crop 2x2 +newline | sep x1"


def test_square_inference_and_errors():
    assert Layout.square(16).grids == (Grid(4, 4),)
    with pytest.raises(ValueError, match="cannot infer a square grid from 15 tokens"):
        Layout.square(15)
    with pytest.raises(ValueError, match=r"Grid.rows must be a positive int, got 0"):
        Grid(0, 3)
    with pytest.raises(ValueError, match="at least one segment"):
        Layout(())
    with pytest.raises(TypeError, match=r"segments\[0\] must be Grid or OffGrid"):
        Layout(((2, 2),))

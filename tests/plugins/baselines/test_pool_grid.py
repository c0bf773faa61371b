"""Where the pool baseline's cells lie: pooled shape, leftover budget, bins and the split over views, by hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tokcompress import Grid, Layout, OffGrid
from tokcompress_baselines.pool_grid import band_widths, bins, cells, pooled_bands, split_budget, views


def rects(c):
    return list(zip(c.r0.tolist(), c.r1.tolist(), c.c0.tolist(), c.c1.tolist()))


def test_3x5_keep_6_is_a_2x3_grid_of_overlapping_adaptive_bins():
    # sqrt(6 * 3 / 5) = 1.90 -> 2 bands of 6 // 2 = 3 cells; rows [0, 2), [1, 3); columns
    # [floor(i 5 / 3), ceil((i + 1) 5 / 3)) = [0, 2), [1, 4), [3, 5)
    assert pooled_bands(3, 5, 6) == 2 and band_widths(2, 6) == [3, 3]
    assert rects(cells(3, 5, 6)) == [(0, 2, 0, 2), (0, 2, 1, 4), (0, 2, 3, 5), (1, 3, 0, 2), (1, 3, 1, 4), (1, 3, 3, 5)]


def test_leftover_budget_widens_evenly_spaced_bands():
    # 3x5 keep 7: sqrt(7 * 3 / 5) = 2.05 -> 2 bands; 7 = 2 * 3 + 1: band floor(0.5 * 2 / 1) = 1 gets 4 cells
    assert pooled_bands(3, 5, 7) == 2 and band_widths(2, 7) == [3, 4]
    assert rects(cells(3, 5, 7))[3:] == [(1, 3, 0, 2), (1, 3, 1, 3), (1, 3, 2, 4), (1, 3, 3, 5)]
    # 16x16 keep 28: sqrt(28) = 5.29 -> 5 bands, 28 = 5 * 5 + 3: bands floor((j + .5) * 5 / 3) = 0, 2, 4 get 6
    assert pooled_bands(16, 16, 28) == 5 and band_widths(5, 28) == [6, 5, 6, 5, 6]


def test_pooled_bands_nearest_integer_halves_up_and_bounds():
    assert pooled_bands(16, 16, 64) == 8 and pooled_bands(24, 24, 128) == 11 and pooled_bands(24, 24, 192) == 14
    assert pooled_bands(4, 1, 3) == 3  # sqrt(12) = 3.46 -> 3
    assert pooled_bands(9, 16, 4) == 2  # sqrt(4 * 9 / 16) = 1.5 exactly: halves up
    assert pooled_bands(25, 16, 4) == 3  # sqrt(4 * 25 / 16) = 2.5 exactly: halves up
    assert pooled_bands(100, 1, 3) == 3  # sqrt(300) = 17.3, but at most k bands (one cell each)
    assert pooled_bands(2, 100, 150) == 2  # sqrt(3) = 1.73 -> 2 = ceil(150 / 100): no band wider than the grid
    assert pooled_bands(1, 100, 3) == 1  # sqrt(0.03) rounds to 0: at least one band
    assert pooled_bands(7, 5, 35) == 7  # keep-all: one band per row


def test_bins_are_adaptive_avg_pools():
    for n, m in [(5, 3), (16, 5), (7, 7), (3, 2), (10, 1)]:
        start, end = bins(n, m)
        onehot = torch.eye(n)[None]  # [1, n, n]: pooling the identity shows each bin's members
        members = F.adaptive_avg_pool1d(onehot, m)[0].T > 0  # [m, n]
        expect = torch.zeros(m, n, dtype=torch.bool)
        for i in range(m):
            expect[i, start[i]:end[i]] = True
        assert torch.equal(members, expect), (n, m)


def test_split_budget_shares_then_largest_remainder():
    assert split_budget(3, [4, 8]) == [1, 2]  # exact shares
    assert split_budget(4, [4, 8]) == [1, 3]  # 1.33 / 2.67: the larger remainder gets the leftover
    assert split_budget(9, [1, 16]) == [1, 8]  # 0.53 / 8.47: a one-token view wins the leftover
    assert split_budget(4, [1, 16]) == [0, 4]  # 0.24 / 3.76
    assert split_budget(2, [4, 4, 4]) == [1, 1, 0]  # ties: the earlier view
    assert split_budget(7, [3, 4]) == [3, 4]  # keep-all


def test_views_of_newline_grids_and_off_grid_segments():
    layout = Layout((OffGrid(1, "cls"), Grid(2, 3, "crop", newline=True)))  # cls p p p nl p p p nl
    got = [(v.kind, v.ordinals.tolist()) for v in views(layout)]
    assert got == [("cls", [[0]]), ("crop", [[1, 2, 3], [5, 6, 7]]), ("newline", [[4, 8]])]


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), data=st.data())
def test_cells_properties(h, w, data):
    k = data.draw(st.integers(0, h * w))
    c = cells(h, w, k)
    assert len(c) == k
    if k == 0:
        return
    sizes = c.sizes()
    assert bool((sizes >= 1).all())
    covered = torch.zeros(h, w, dtype=torch.int64)
    for r0, r1, c0, c1 in rects(c):
        covered[r0:r1, c0:c1] += 1
    assert bool((covered >= 1).all()), "the cells cover the view"
    rows, cols = c.centres()
    raster = rows * w + cols
    assert bool((raster[1:] > raster[:-1]).all()), "distinct centres, in raster order"
    assert bool(((c.r0 <= rows) & (rows < c.r1) & (c.c0 <= cols) & (cols < c.c1)).all()), "centre inside its cell"
    top_left = c.r0 * w + c.c0
    assert bool((top_left[1:] > top_left[:-1]).all())
    if k == h * w:
        assert bool((sizes == 1).all()), "keep-all: one token per cell"
    cell, r, col = c.members()
    assert torch.equal(torch.bincount(cell, minlength=k), sizes)
    assert bool(((c.r0[cell] <= r) & (r < c.r1[cell]) & (c.c0[cell] <= col) & (col < c.c1[cell])).all())


def test_cells_refuse_a_budget_outside_the_view():
    import pytest

    with pytest.raises(ValueError, match=r"a 2x3 view cannot be pooled into 7 cells; expected 0 <= k <= 6"):
        cells(2, 3, 7)

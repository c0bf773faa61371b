"""The pool baseline: kept indices, roles and pooled features worked by hand; keep-all exact; misuse refused.

Features are the token index (``[N, 1]``), so a pooled token's value is the mean index of its cell.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import tokcompress
from tokcompress import Grid, InputError, Layout, OffGrid, SpecError, VisualTokens
from tokcompress.selectors.base import KEEP, TARGET
from tokcompress_baselines.pool_grid import band_widths, pooled_bands


def indexed(layout: Layout, batch: int = 1) -> VisualTokens:
    n = layout.num_tokens
    return VisualTokens(torch.arange(float(n)).view(1, n, 1).repeat(batch, 1, 1), layout=layout)


def pool(keep: int, tokens: VisualTokens, **selector) -> tokcompress.Selection:
    spec = {"extends": "pool", "selector": {"name": "pool", **selector}} if selector else "pool"
    return tokcompress.build_pruner(spec).prune(tokens, keep=keep)


def test_3x5_keep_6_pools_2x3_cells_into_their_centres():
    # cells rows [0, 2) / [1, 3) x columns [0, 2) / [1, 4) / [3, 5); centres rows 0 / 1, columns 0 / 2 / 3
    out = pool(6, indexed(Layout.grid(3, 5)))
    assert out.indices.tolist() == [[0, 2, 3, 5, 7, 8]]
    # cell (rows 0-1, columns 0-1) = tokens 0 1 5 6 -> 3; columns 1-3: 1 2 3 6 7 8 -> 4.5; columns 3-4: 3 4 8 9 -> 6;
    # rows 1-2 add 5 to each
    assert out.features.flatten().tolist() == [3.0, 4.5, 6.0, 8.0, 9.5, 11.0]
    assert out.roles.tolist() == [[TARGET] * 6] and out.merged.all()


def test_pooled_values_equal_adaptive_avg_pool2d_for_a_rectangular_pooled_grid():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 15, 4, generator=g)
    out = pool(6, VisualTokens(x, layout=Layout.grid(3, 5)))
    expect = F.adaptive_avg_pool2d(x[0].T.reshape(4, 3, 5), (2, 3)).reshape(4, 6).T
    torch.testing.assert_close(out.features[0], expect)


def test_3x5_keep_7_widens_the_second_band():
    # 2 bands, widths 3 and 4: band 1 (rows 1-2) columns [0, 2) [1, 3) [2, 4) [3, 5), centres 0 1 2 3
    out = pool(7, indexed(Layout.grid(3, 5)))
    assert out.indices.tolist() == [[0, 2, 3, 5, 6, 7, 8]]
    # rows 1-2 average to 7.5 + column; the columns of each cell average to 0.5, 1.5, 2.5, 3.5
    assert out.features.flatten().tolist() == [3.0, 4.5, 6.0, 8.0, 9.0, 10.0, 11.0]


def test_top_left_anchor_keeps_the_cells_first_tokens_with_the_same_means():
    out = pool(6, indexed(Layout.grid(3, 5)), anchor="top_left")
    assert out.indices.tolist() == [[0, 1, 3, 5, 6, 8]]
    assert out.features.flatten().tolist() == [3.0, 4.5, 6.0, 8.0, 9.5, 11.0]


def test_multi_view_splits_the_budget_by_size_and_pools_each_view_alone():
    layout = Layout((Grid(2, 2, "base"), Grid(2, 4, "crop")))  # tokens 0-3 and 4-11
    # keep 3: shares 1 and 2. base: one cell, centre (0, 0) = token 0, mean 1.5. crop 2x4 into 1 band of 2:
    # columns [0, 2) [2, 4), centres (0, 0) (0, 2) = tokens 4, 6; means (4 5 8 9) 6.5 and (6 7 10 11) 8.5
    out = pool(3, indexed(layout))
    assert out.indices.tolist() == [[0, 4, 6]]
    assert out.features.flatten().tolist() == [1.5, 6.5, 8.5]
    # keep 4: shares 1.33 / 2.67 -> 1 + 2, the larger remainder (crop) gets the leftover: crop 1 band of 3,
    # columns [0, 2) [1, 3) [2, 4) -> tokens 4, 5, 6; means 6.5, 7.5, 8.5
    out = pool(4, indexed(layout))
    assert out.indices.tolist() == [[0, 4, 5, 6]]
    assert out.features.flatten().tolist() == [1.5, 6.5, 7.5, 8.5]


def test_newline_tokens_and_off_grid_tokens_are_views_of_their_own():
    # p p p nl p p p nl: patches 2x3 (tokens 0 1 2 / 4 5 6) and newlines 1x2 (3, 7); keep 4 -> 3 + 1.
    # patches: 1 band of 3, each column one cell, centre row 0: tokens 0 1 2, means 2 3 4; newlines: token 3, mean 5
    out = pool(4, indexed(Layout((Grid(2, 3, newline=True),))))
    assert out.indices.tolist() == [[0, 1, 2, 3]]
    assert out.features.flatten().tolist() == [2.0, 3.0, 4.0, 5.0]
    # CLS + 4x4: keep 9 -> shares 0.53 / 8.47 -> 0 + 8 and the leftover to CLS (larger remainder), kept as is
    out = pool(9, indexed(Layout((OffGrid(1, "cls"), Grid(4, 4)))))
    assert out.indices[0, 0] == 0 and out.features[0, 0, 0] == 0.0 and out.roles[0, 0] == KEEP and not out.merged[0, 0]
    # keep 4 -> 0.24 / 3.76: CLS gets nothing, the grid is 2x2 cells of 2x2 (tokens 1 + 0 2 8 10);
    # the first cell holds tokens 1 2 5 6 -> 3.5, the next ones 2, 8 and 10 more
    out = pool(4, indexed(Layout((OffGrid(1, "cls"), Grid(4, 4)))))
    assert out.indices.tolist() == [[1, 3, 9, 11]]
    assert out.features.flatten().tolist() == [3.5, 5.5, 11.5, 13.5]


def test_single_token_cells_are_kept_exactly_and_marked_keep():
    # 3x5 keep 14: 3 bands of widths 5 4 5 -> bands 0 and 2 are the grid rows themselves (one token a cell)
    assert band_widths(pooled_bands(3, 5, 14), 14) == [5, 4, 5]
    x = torch.randn(1, 15, 3, dtype=torch.float16)
    out = pool(14, VisualTokens(x, layout=Layout.grid(3, 5)))
    assert out.indices.tolist() == [[0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14]]
    single = torch.tensor([True] * 5 + [False] * 4 + [True] * 5)
    assert torch.equal(out.features[0, single], x[0, out.indices[0, single]])
    assert out.roles[0].tolist() == [KEEP] * 5 + [TARGET] * 4 + [KEEP] * 5
    assert out.merged[0].tolist() == single.logical_not().tolist()
    assert out.features.dtype == torch.float16


def test_half_precision_means_are_accumulated_in_fp32():
    # (2048 + 5 * 1) / 6 = 342.17 -> 342.25 in fp16; summed in fp16 (spacing 2 at 2048) it comes out 342
    x = torch.tensor([[[2048.0], [1.0], [1.0], [1.0], [1.0], [1.0]]], dtype=torch.float16)
    out = pool(1, VisualTokens(x, layout=Layout.grid(2, 3)))
    assert out.features.dtype == torch.float16 and out.features.item() == 342.25


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_keep_all_is_exact_even_through_the_merger(dtype):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 20, 5, generator=g).to(dtype)
    layout = Layout((OffGrid(1, "cls"), Grid(3, 5)))
    # row 1 is padded after 16 valid tokens, so keep=16 runs the selector and merger (k < N) and keeps all of row 1
    mask = torch.tensor([[True] * 16 + [False] * 4, [True] * 16 + [False] * 4])
    out = tokcompress.build_pruner("pool").prune(VisualTokens(x, mask=mask, layout=layout), keep=16)
    assert out.indices.tolist() == [list(range(16))] * 2
    assert torch.equal(out.features, x[:, :16]) and not out.merged.any() and bool((out.roles == KEEP).all())
    whole = tokcompress.build_pruner("pool").prune(VisualTokens(x, layout=Layout.grid(4, 5)), keep=20)
    assert torch.equal(whole.features, x)


def test_padding_and_per_row_layouts():
    # row 0: 2x3 grid, all valid; row 1: a 2x2 grid after two padding tokens (padding anywhere is allowed)
    x = torch.arange(12.0).view(2, 6, 1)
    mask = torch.tensor([[True] * 6, [False, False, True, True, True, True]])
    out = pool(2, VisualTokens(x, mask=mask, layout=[Layout.grid(2, 3), Layout.grid(2, 2)]))
    # row 0: 2x3 keep 2: 1 band, columns [0, 2) [1, 3): tokens 0, 1, means (0 1 3 4) 2 and (1 2 4 5) 3
    # row 1: 2x2 keep 2: 1 band (sqrt(2) = 1.41), columns 0 and 1: valid ordinals 0, 1 -> indices 2, 3;
    # means (8 10) 9 and (9 11) 10
    assert out.indices.tolist() == [[0, 1], [2, 3]]
    assert out.features.flatten().tolist() == [2.0, 3.0, 9.0, 10.0]


def test_per_row_budgets():
    out = tokcompress.build_pruner("pool").prune(indexed(Layout.grid(3, 5), batch=2), keep=[6, 15])
    assert out.row(0).tolist() == [0, 2, 3, 5, 7, 8] and out.row(1).tolist() == list(range(15))
    assert out.features[0, :6].flatten().tolist() == [3.0, 4.5, 6.0, 8.0, 9.5, 11.0]
    assert out.features[1].flatten().tolist() == [float(i) for i in range(15)]


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), batch=st.integers(1, 2), seed=st.integers(0, 2**31 - 1), data=st.data())
def test_properties(h, w, batch, seed, data):
    keep = data.draw(st.integers(1, h * w))
    x = torch.randn(batch, h * w, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    out = tokcompress.build_pruner("pool").prune(VisualTokens(x, layout=Layout.grid(h, w)), keep=keep)
    assert out.indices.shape == (batch, keep) and out.features.shape == (batch, keep, 3), "exactly the budget"
    bands = pooled_bands(h, w, keep)
    widths = set(band_widths(bands, keep))
    assert max(widths) - min(widths) <= 1 and max(widths) <= w
    lo, hi = min(widths), max(widths)
    # aspect: a cell spans about as many rows as columns (within the rounding of the band count)
    assert abs(bands - (keep * h / w) ** 0.5) <= 0.5 or bands in (min(h, keep), -(-keep // w))
    if h % bands == 0 and lo == hi and w % lo == 0:  # the cells partition the grid into equal blocks
        torch.testing.assert_close(out.features.mean(dim=1), x.mean(dim=1), rtol=0, atol=1e-12)
    if lo == hi:
        expect = F.adaptive_avg_pool2d(x.transpose(1, 2).reshape(batch, 3, h, w), (bands, lo))
        torch.testing.assert_close(out.features, expect.reshape(batch, 3, keep).transpose(1, 2), rtol=0, atol=1e-12)


def test_the_merger_refuses_another_selectors_picks():
    pruner = tokcompress.build_pruner({"selector": "uniform", "merger": "pool"})
    # uniform keeps 2 6 10 14 of a 4x4 grid; the first cell of 2x2 pooling is rows 0-1, columns 0-1
    with pytest.raises(InputError, match=r"merger 'pool' averages the cells of selector 'pool', but kept token 2 "
                                         r"\(row 0, column 2 of the 4x4 image view, which keeps 4\) is not in cell 0 "
                                         r"\(rows 0-1, columns 0-1\); use the merger after selector 'pool'"):
        pruner.prune(indexed(Layout.grid(4, 4)), keep=4)


def test_missing_layout_and_bad_parameters_are_named():
    with pytest.raises(InputError, match=r"selector 'pool' \(PoolSelector\), merger 'pool' \(PoolMerger\) needs VisualTokens.layout, which this batch does not carry"):
        tokcompress.build_pruner("pool").prune(VisualTokens(torch.randn(1, 16, 2)), keep=4)
    with pytest.raises(SpecError, match=r"anchor.*'centre' or 'top_left'.*'middle'"):
        tokcompress.build_pruner({"extends": "pool", "selector": {"name": "pool", "anchor": "middle"}})
    with pytest.raises(SpecError, match=r"pool.*window"):
        tokcompress.build_pruner({"extends": "pool", "merger": {"name": "pool", "window": 2}})

"""`maxmin` (DivPrune): farthest-point greedy on cosine distance, first pick by nearest-neighbour distance."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tokcompress
from tokcompress import SpecError, VisualTokens


def at_angles(*degrees: float) -> torch.Tensor:
    """Unit vectors in the plane: the cosine distance between two of them is 1 - cos(angle between)."""
    rad = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([rad.cos(), rad.sin()], dim=-1).float()[None]


def divprune(**selector) -> tokcompress.Pruner:
    return tokcompress.build_pruner({"graph": "cosine", "selector": {"name": "maxmin", **selector}})


# Five tokens at 0, 10, 90, 95 and 200 degrees.
FIVE = at_angles(0, 10, 90, 95, 200)


def test_first_pick_is_the_token_whose_nearest_neighbour_is_farthest():
    # nearest-neighbour distances (second-smallest of each column, the smallest being itself):
    #   t0, t1: 1 - cos 10 = 0.0152   t2, t3: 1 - cos 5 = 0.0038
    #   t4 (200): to t3 at 105 deg -> 1 - cos 105 = 1.2588 (t2: 1.342, t0: 1.9397, t1: 1.9848)
    # first pick t4; then distances to t4: t0 1.9397, t1 1.9848, t2 1.342, t3 1.2588 -> t1
    # then min distance to {t4, t1}: t0 min(1.94, 1 - cos 10 = 0.015) = 0.015,
    #   t2 min(1.342, 1 - cos 80 = 0.826) = 0.826, t3 min(1.259, 1 - cos 85 = 0.913) = 0.913 -> t3
    assert divprune().select(VisualTokens(FIVE), keep=3).tolist() == [[1, 3, 4]]
    # fourth pick: t0 min(0.015, 1 - cos 95 = 1.087) = 0.015 beats t2 min(0.826, 1 - cos 5 = 0.0038)
    assert divprune().select(VisualTokens(FIVE), keep=4).tolist() == [[0, 1, 3, 4]]


def test_first_pick_by_score_changes_the_result():
    # first = score with t0 scored highest: t0; farthest from t0: t4 (1.9397; t3 1.087, t2 1.0, t1 0.015)
    # then min distance to {t0, t4}: t1 0.015, t2 min(1.0, 1.342) = 1.0, t3 min(1.087, 1.259) = 1.087 -> t3
    pruner = tokcompress.build_pruner({"scorer": "attention", "graph": "cosine", "selector": {"name": "maxmin", "first": "score"}})
    t = VisualTokens(FIVE, attention=torch.tensor([[0.9, 0.1, 0.1, 0.1, 0.1]]))
    assert pruner.select(t, keep=3).tolist() == [[0, 3, 4]]


def test_ties_go_to_the_lower_index():
    # (1,0), (1,0), (-1,0), (-1,0): every nearest-neighbour distance is exactly 0 -> first pick t0;
    # distances to t0: t1 0, t2 2, t3 2 -> tie -> t2
    t = VisualTokens(torch.tensor([[[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]]]))
    assert divprune().select(t, keep=2).tolist() == [[0, 2]]


def test_padding_is_neither_picked_nor_a_neighbour():
    # row 1 pads t4 (the far token) with NaN features: among t0..t3 the nearest-neighbour distances
    # are 0.0152 (t0, t1) and 0.0038 (t2, t3) -> first t0; farthest from t0: t3 (1 - cos 95 = 1.087)
    feats = torch.cat([FIVE, FIVE])
    feats[1, 4] = float("nan")
    t = VisualTokens(feats, mask=torch.tensor([[True] * 5, [True] * 4 + [False]]))
    assert divprune().select(t, keep=2).tolist() == [[1, 4], [0, 3]]


def test_score_first_needs_a_scorer():
    with pytest.raises(SpecError, match=r"selector 'maxmin'.*ranks tokens by score but the spec has no scorer"):
        divprune(first="score")
    with pytest.raises(SpecError, match=r"needs a similarity graph but the spec has no 'graph' block"):
        tokcompress.build_pruner({"selector": "maxmin"})


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 3), n=st.integers(2, 30), d=st.integers(2, 9), data=st.data())
def test_dense_and_on_demand_rows_pick_the_same_tokens(seed, b, n, d, data):
    g = torch.Generator().manual_seed(seed)
    t = VisualTokens(torch.randn(b, n, d, generator=g))
    keep = data.draw(st.integers(1, n - 1))
    dense = divprune().select(t, keep=keep)
    lazy = divprune(dense_max_bytes=0, block_size=data.draw(st.integers(1, 8))).select(t, keep=keep)
    assert torch.equal(dense, lazy)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 25), d=st.integers(2, 6), data=st.data())
def test_each_pick_maximises_the_minimum_distance_to_the_earlier_picks(seed, n, d, data):
    # the rule by definition, in float64, on the full distance matrix
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    keep = data.draw(st.integers(2, n - 1))
    unit = torch.nn.functional.normalize(x, dim=-1)
    dist = 1 - unit @ unit.T
    nn = [sorted(dist[:, i].tolist())[1] for i in range(n)]
    picked: list[int] = []
    for _ in range(keep):
        rest = [i for i in range(n) if i not in picked]
        gain = {i: (nn[i] if not picked else min(dist[p, i].item() for p in picked)) for i in rest}
        ranked = sorted(rest, key=lambda i: -gain[i])
        assume(len(ranked) == 1 or gain[ranked[0]] - gain[ranked[1]] > 1e-5)  # fp32 cannot separate closer calls
        picked.append(ranked[0])
    assert divprune().select(VisualTokens(x[None].float()), keep=keep)[0].tolist() == sorted(picked)

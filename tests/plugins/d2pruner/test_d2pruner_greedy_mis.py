"""Selector `greedy_mis`: hand-worked cases, fallbacks, and equality with a one-token-at-a-time reference."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokcompress import InputError, Layout, SpecError, VisualTokens, build_pruner
from tokcompress.graphs.base import Graph
from tokcompress_d2pruner.greedy_mis import GreedyMISParams, GreedyMISSelector, num_pivots
from tokcompress_d2pruner.hybrid import SpatialGraphBuilder, SpatialParams

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


class DenseGraph(Graph):
    """An adjacency given as a dense [B, N, N] bool tensor (tests only)."""

    kind = "adjacency"

    def __init__(self, adj: torch.Tensor) -> None:
        super().__init__(adj.shape[0], adj.shape[1], adj.device)
        self.adj = adj

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        return torch.gather(self.adj, 1, index.unsqueeze(-1).expand(-1, -1, self.num_tokens))


def reference_select(scores, valid, adj, keep, pivot_ratio=0.7, fallback="fill", suppress=False):
    """The method's pseudocode, one token at a time in plain Python."""
    out = []
    for b in range(len(scores)):
        order = sorted((i for i in range(len(scores[b])) if valid[b][i]), key=lambda i: (-scores[b][i], i))
        n_p = math.floor(pivot_ratio * keep + 1e-9)
        pivots, rest = order[:n_p], order[n_p:]
        need = keep - n_p
        picked: list[int] = []

        def mis(pool, avail):
            for a in pool:
                if len(picked) == need:
                    break
                if avail[a]:
                    picked.append(a)
                    avail[a] = False
                    for j in pool:
                        if adj[b][a][j]:
                            avail[j] = False

        avail = {i: True for i in rest}
        if suppress:
            for p in pivots:
                for j in rest:
                    if adj[b][p][j]:
                        avail[j] = False
        mis(rest, avail)
        while len(picked) < need:
            left = [i for i in rest if i not in picked]
            if fallback == "fill":
                picked += left[: need - len(picked)]
            else:
                mis(left, {i: True for i in left})
        out.append(sorted(pivots + picked))
    return out


def _select(scores, adj_or_graph, keep, mask=None, layout=None, device="cpu", **params):
    scores = scores.to(device)
    graph = adj_or_graph if isinstance(adj_or_graph, Graph) else DenseGraph(adj_or_graph.to(device))
    feats = torch.zeros(*scores.shape, 1, device=device)
    tokens = VisualTokens(feats, mask=None if mask is None else mask.to(device), layout=layout)
    out = GreedyMISSelector(GreedyMISParams(**params)).select(tokens, scores, graph, keep)
    assert out.device.type == device
    return out.cpu().tolist()


def _grid_graph(rows, cols, radius=1, batch=1, device="cpu"):
    tokens = VisualTokens(torch.zeros(batch, rows * cols, 1, device=device), layout=Layout.grid(rows, cols))
    return SpatialGraphBuilder(SpatialParams(radius=radius)).build(tokens)


def _descending(n, batch=1):
    return torch.arange(n, 0, -1, dtype=torch.float32).expand(batch, n).clone()


# -- hand-worked cases (4x4 grid, radius-1 Chebyshev neighbours, scores falling in reading order) ----
@pytest.mark.parametrize("device", DEVICES)
def test_mis_skips_spatial_neighbours_on_a_4x4_grid(device):
    # Top-k would keep 0, 1, 2, 3. MIS: 0 (drops 1, 4, 5), 2 (drops 3, 6, 7), 8 (drops 9, 12, 13), 10.
    graph = _grid_graph(4, 4, device=device)
    assert _select(_descending(16), graph, 4, pivot_ratio=0.0, device=device) == [[0, 2, 8, 10]]


@pytest.mark.parametrize("device", DEVICES)
def test_exhausted_independent_set_triggers_the_fallback(device):
    graph = _grid_graph(4, 4, device=device)
    # The set {0, 2, 8, 10} is maximal; 3 more tokens come from the fallback.
    assert _select(_descending(16), graph, 7, pivot_ratio=0.0, device=device) == [[0, 1, 2, 3, 4, 8, 10]]
    # rerun_mis: new MIS over the leftovers 1, 3, 4, 5, ...: 1 (drops 4, 5, 6), 3 (drops 7), 9.
    assert _select(_descending(16), graph, 7, pivot_ratio=0.0, fallback="rerun_mis", device=device) == [[0, 1, 2, 3, 8, 9, 10]]


def test_pivots_keep_their_neighbours_unless_suppressed():
    graph = _grid_graph(4, 4)
    # keep 5, pivot_ratio 0.4: pivots 0, 1. MIS over 2..15: 2 (drops 3, 5, 6, 7), 4 (drops 8, 9), 10.
    assert _select(_descending(16), graph, 5, pivot_ratio=0.4) == [[0, 1, 2, 4, 10]]
    # Suppressed: 2, 4, 5, 6 start unavailable; MIS: 3 (drops 7), 8 (drops 9, 12, 13), 10.
    assert _select(_descending(16), graph, 5, pivot_ratio=0.4, suppress_pivot_neighbors=True) == [[0, 1, 3, 8, 10]]


def test_ties_go_to_the_lower_index():
    scores = torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.5, 2.0]])
    adj = torch.zeros(1, 6, 6, dtype=torch.bool)
    adj[0, 2, 3] = adj[0, 3, 2] = True
    # Order 1, 2, 3, 5, 0, 4. keep 4, pivot 0.25 -> 1 pivot (1); MIS: 2 (drops 3), 5, 0.
    assert _select(scores, adj, 4, pivot_ratio=0.25) == [[0, 1, 2, 5]]


@pytest.mark.parametrize("device", DEVICES)
def test_batch_of_two_different_grids_with_mask_and_per_row_layouts(device):
    # Row 0: 4x4 grid, 5 padding tokens at the end. Row 1: 3x5 grid after 1 padding token and with
    # 5 at the end; scores fall in reading order in both. Radius-1 MIS, no pivots:
    # row 0 -> 0, 2, 8, 10; row 1 (grid indices) -> 0, 2, 4, 10, i.e. positions 1, 3, 5, 11.
    N = 21
    mask = torch.zeros(2, N, dtype=torch.bool)
    mask[0, :16] = True
    mask[1, 1:16] = True
    layouts = [Layout.grid(4, 4), Layout.grid(3, 5)]
    tokens = VisualTokens(torch.zeros(2, N, 1, device=device), mask=mask.to(device), layout=layouts)
    graph = SpatialGraphBuilder(SpatialParams(radius=1)).build(tokens)
    scores = _descending(N, 2)
    scores[1, 0] = 1e6  # padding: must be ignored however high
    out = _select(scores, graph, 4, mask=mask, layout=layouts, device=device, pivot_ratio=0.0)
    assert out == [[0, 2, 8, 10], [1, 3, 5, 11]]


def test_pivot_count_is_the_floor_of_ratio_times_budget():
    assert [num_pivots(n, 0.7) for n in (64, 128, 192, 10, 1)] == [44, 89, 134, 7, 0]
    assert num_pivots(5, 1.0) == 5 and num_pivots(5, 0.0) == 0


# -- equality with the reference, and invariants -----------------------------------------------
@st.composite
def cases(draw):
    B = draw(st.integers(1, 3))
    N = draw(st.integers(1, 14))
    seed = draw(st.integers(0, 2**20))
    g = torch.Generator().manual_seed(seed)
    adj = torch.rand(B, N, N, generator=g) < draw(st.sampled_from([0.0, 0.2, 0.5, 0.9]))
    if draw(st.booleans()):
        adj = adj | adj.transpose(1, 2)
    adj &= ~torch.eye(N, dtype=torch.bool)
    scores = torch.randint(0, 4, (B, N), generator=g).float()  # few values: many ties
    mask = torch.rand(B, N, generator=g) < 0.8
    mask[:, 0] = True
    keep = draw(st.integers(1, int(mask.sum(1).min())))
    params = dict(
        pivot_ratio=draw(st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0])),
        fallback=draw(st.sampled_from(["fill", "rerun_mis"])),
        suppress_pivot_neighbors=draw(st.booleans()),
        window=draw(st.integers(1, 6)),
    )
    return scores, mask, adj, keep, params


@settings(max_examples=150, deadline=None)
@given(case=cases())
def test_matches_the_one_token_at_a_time_reference(case):
    scores, mask, adj, keep, params = case
    got = _select(scores, adj, keep, mask=mask, **params)
    want = reference_select(
        scores.tolist(), mask.tolist(), adj.tolist(), keep,
        params["pivot_ratio"], params["fallback"], params["suppress_pivot_neighbors"],
    )
    assert got == want
    for row, valid in zip(got, mask.tolist()):
        assert len(row) == keep and row == sorted(set(row)) and all(valid[i] for i in row)


@settings(max_examples=40, deadline=None)
@given(case=cases())
def test_rows_are_independent_and_a_budget_within_the_greedy_set_has_no_edges(case):
    scores, mask, adj, keep, params = case
    got = _select(scores, adj, keep, mask=mask, **params)
    for b in range(len(got)):
        assert got[b] == _select(scores[b : b + 1], adj[b : b + 1], keep, mask=mask[b : b + 1], **params)[0]
    for b in range(len(got)):
        order = sorted((i for i in range(mask.shape[1]) if mask[b, i]), key=lambda i: (-float(scores[b, i]), i))
        greedy: list[int] = []
        for a in order:  # the full greedy maximal independent set of the row
            if not any(bool(adj[b, g, a]) for g in greedy):
                greedy.append(a)
        budget = min(keep, len(greedy))
        row = _select(scores[b : b + 1], adj[b : b + 1], budget, mask=mask[b : b + 1], pivot_ratio=0.0)[0]
        assert row == sorted(greedy[:budget])
        picks = greedy[:budget]  # no pick is a neighbour of an earlier pick (graphs may be asymmetric)
        assert not any(bool(adj[b, picks[i], picks[j]]) for i in range(budget) for j in range(i + 1, budget))


def test_rejects_too_small_rows_and_missing_graph():
    sel = GreedyMISSelector()
    tokens = VisualTokens(torch.zeros(2, 4, 1), mask=torch.tensor([[True] * 4, [True, True, False, False]]))
    with pytest.raises(InputError, match=r"keep=3 but rows \[1\] have fewer valid tokens"):
        sel.select(tokens, torch.rand(2, 4), DenseGraph(torch.zeros(2, 4, 4, dtype=torch.bool)), 3)
    with pytest.raises(InputError, match="needs an adjacency graph"):
        sel.select(VisualTokens(torch.zeros(1, 4, 1)), torch.rand(1, 4), None, 3)
    with pytest.raises(SpecError, match="fallback"):
        build_pruner({"scorer": "attention", "graph": "semantic", "selector": {"name": "greedy_mis", "fallback": "none"}})
    with pytest.raises(SpecError, match="needs a adjacency graph|needs an? adjacency graph"):
        build_pruner({"scorer": "attention", "selector": "greedy_mis"})

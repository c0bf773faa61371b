"""GraphBuilders `hybrid`, `semantic`, `spatial`: edges against a pairwise reference, segments, errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tokcompress_d2pruner.hybrid as hybrid_module
from tokcompress import Grid, InputError, Layout, OffGrid, VisualTokens, build_pruner
from tokcompress_d2pruner.hybrid import (
    HybridGraphBuilder,
    HybridParams,
    SemanticGraphBuilder,
    SemanticParams,
    SpatialGraphBuilder,
    SpatialParams,
)

MARGIN = 1e-4


def reference_edges(features, coords, valid, p: dict) -> tuple[list, float]:
    """[B][N][N] bool edges by the documented rules, in float64 one pair at a time.

    Also returns the smallest distance of any compared value to the threshold (for `assume`).
    """
    f = features.double()
    B, N, _ = f.shape
    out = [[[False] * N for _ in range(N)] for _ in range(B)]
    closest = math.inf
    closest_span = [math.inf]
    for b in range(B):
        idx = [i for i in range(N) if valid[b, i]]
        cos = {}
        for i in idx:
            for j in idx:
                ni, nj = f[b, i].norm().item(), f[b, j].norm().item()
                cos[i, j] = 0.0 if ni == 0 or nj == 0 else (f[b, i] @ f[b, j]).item() / (ni * nj)
        if p.get("semantic_norm") == "minmax" and len(idx) > 1:
            vals = [v for (i, j), v in cos.items() if i != j]
            lo, hi = min(vals), max(vals)
            cos = {k: ((v - lo) / (hi - lo) if hi - lo > 1e-6 else 0.0) for k, v in cos.items()}
            if vals:
                closest_span[0] = abs(hi - lo - 1e-6)
        for i in idx:
            for j in idx:
                if i == j:
                    continue
                si, ri, ci = coords[b][i]
                sj, rj, cj = coords[b][j]
                comparable = si == sj and ri >= 0 and rj >= 0
                dr, dc = abs(ri - rj), abs(ci - cj)
                d = {"chebyshev": max(dr, dc), "manhattan": dr + dc, "euclidean": math.hypot(dr, dc)}[p["metric"]]
                near = comparable and d <= p["radius"]
                s_sem, theta = cos[i, j], p["threshold"]
                kind = p["builder"]
                if kind == "spatial":
                    edge = near
                elif kind == "semantic" or (p["rule"] == "fused" and p["semantic_weight"] == 1.0):
                    edge, value = s_sem > theta, s_sem
                    closest = min(closest, abs(value - theta))
                elif p["rule"] == "or":
                    edge = s_sem > theta or near
                    closest = min(closest, abs(s_sem - theta))
                else:
                    a = p["semantic_weight"]
                    if p["spatial_form"] == "binary":
                        s_spat = 1.0 if near else 0.0
                    else:
                        s_spat = max(0.0, 1 - d / (p["radius"] + 1)) if comparable else 0.0
                    value = a * s_sem + (1 - a) * s_spat
                    edge = value > theta
                    closest = min(closest, abs(value - theta))
                out[b][i][j] = edge
        closest = min(closest, closest_span[0])
    return out, closest


@st.composite
def layouts(draw):
    segs = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            rows, cols = draw(st.integers(1, 3)), draw(st.integers(1, 4))
            segs.append(Grid(rows, cols, draw(st.sampled_from(["image", "tile"])), draw(st.booleans())))
        else:
            segs.append(OffGrid(draw(st.integers(1, 2))))
    return Layout(tuple(segs))


def _features(B, N, D, seed, pool=4):
    """Tokens drawn from a small pool of directions with random scales, so duplicates occur."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(pool, D, generator=g)
    pick = torch.randint(0, pool, (B, N), generator=g)
    noise = torch.randn(B, N, D, generator=g) * (torch.rand(B, N, 1, generator=g) < 0.5)
    return base[pick] * (0.5 + torch.rand(B, N, 1, generator=g) * 2) + 0.3 * noise


def _builder(p: dict):
    if p["builder"] == "spatial":
        return SpatialGraphBuilder(SpatialParams(radius=p["radius"], metric=p["metric"]))
    if p["builder"] == "semantic":
        return SemanticGraphBuilder(SemanticParams(threshold=p["threshold"], semantic_norm=p["semantic_norm"]))
    keys = ("threshold", "semantic_norm", "radius", "metric", "rule", "semantic_weight", "spatial_form")
    return HybridGraphBuilder(HybridParams(**{k: p[k] for k in keys}))


@settings(max_examples=60, deadline=None)
@given(
    lay=st.lists(layouts(), min_size=1, max_size=2),
    seed=st.integers(0, 2**20),
    builder=st.sampled_from(["hybrid", "semantic", "spatial"]),
    rule=st.sampled_from(["fused", "or"]),
    semantic_weight=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
    threshold=st.sampled_from([0.3, 0.6, 0.8]),
    radius=st.sampled_from([0, 1, 1.5, 2]),
    metric=st.sampled_from(["chebyshev", "manhattan", "euclidean"]),
    spatial_form=st.sampled_from(["binary", "linear"]),
    semantic_norm=st.sampled_from(["none", "minmax"]),
    block=st.integers(1, 7),
)
def test_rows_match_the_pairwise_reference(lay, seed, builder, block, **params):
    p = {**params, "builder": builder}
    counts = [x.num_tokens for x in lay]
    N = max(counts)
    mask = torch.tensor([[i < c for i in range(N)] for c in counts])
    feats = _features(len(lay), N, 5, seed)
    tokens = VisualTokens(feats, mask=mask, layout=lay)
    expected, closest = reference_edges(feats, tokens.coords().tolist(), mask, p)
    assume(closest > MARGIN)
    graph = _builder(p).build(tokens)
    got = graph.dense(block_size=block)
    assert got.dtype == torch.bool and got.shape == (len(lay), N, N)
    assert got.tolist() == expected
    # `block` (the selector's path): any rows against any columns, repeats and padding included.
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, N, (len(lay), block), generator=g)
    cols = torch.randint(0, N, (len(lay), 2 * block), generator=g)
    want = torch.gather(torch.gather(got, 1, rows.unsqueeze(-1).expand(-1, -1, N)), 2, cols.unsqueeze(1).expand(-1, block, -1))
    assert torch.equal(graph.block(rows, cols), want)


def test_duplicated_features_are_linked_and_nothing_else():
    e = torch.eye(4)
    feats = torch.stack([e[0], e[0], e[1], 2 * e[1], e[2], e[3]]).unsqueeze(0)  # 3 is a scaled copy of 2
    graph = SemanticGraphBuilder().build(VisualTokens(feats))
    pairs = {tuple(p) for p in graph.dense()[0].nonzero().tolist()}
    assert pairs == {(0, 1), (1, 0), (2, 3), (3, 2)}


def test_tiles_are_not_spatial_neighbours_and_offgrid_tokens_link_only_semantically():
    layout = Layout((Grid(2, 2, "tile"), Grid(2, 2, "tile"), OffGrid(1)))
    feats = torch.eye(9)[:9].unsqueeze(0).clone()
    feats[0, 8] = feats[0, 0]  # the separator duplicates token 0's content
    graph = HybridGraphBuilder(HybridParams(rule="or", radius=5)).build(VisualTokens(feats, layout=layout))
    adj = graph.dense()[0]
    tile_a, tile_b = range(0, 4), range(4, 8)
    for i in range(9):
        for j in range(9):
            same_tile = (i in tile_a and j in tile_a) or (i in tile_b and j in tile_b)
            semantic = {i, j} == {0, 8}
            assert bool(adj[i, j]) == (i != j and (same_tile or semantic)), (i, j)


def test_grounding_rule_links_only_close_and_similar_tokens():
    # alpha 0.5, theta 0.8: linked iff within the radius AND cosine > 0.6.
    layout = Layout.grid(1, 5)
    a = torch.tensor([1.0, 0.0])
    b = torch.tensor([0.7, math.sqrt(1 - 0.49)])  # cos(a, b) = 0.7
    c = torch.tensor([0.5, math.sqrt(0.75)])  # cos(a, c) = 0.5
    feats = torch.stack([a, b, c, a, a]).unsqueeze(0)  # token 4 duplicates 0 but is 4 columns away
    adj = HybridGraphBuilder(HybridParams(semantic_weight=0.5)).build(VisualTokens(feats, layout=layout)).dense()[0]
    assert adj[0].nonzero().flatten().tolist() == [1]  # 2: too dissimilar; 3, 4: beyond radius 2
    assert adj[3].nonzero().flatten().tolist() == [1, 4]  # cos(b, a) = 0.7, 4 is a duplicate next door


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs_give_the_edges_of_their_fp32_values(monkeypatch, dtype):
    feats = _features(2, 40, 64, seed=3).to(dtype)
    layout = Layout.grid(5, 8)
    params = HybridParams(rule="or", threshold=0.8)
    ref = HybridGraphBuilder(params).build(VisualTokens(feats.float(), layout=layout)).dense()
    got = HybridGraphBuilder(params).build(VisualTokens(feats, layout=layout)).dense()
    assert torch.equal(got, ref)
    # Tiny chunks: columns converted 3 at a time, rows 1 at a time; same edges.
    monkeypatch.setattr(hybrid_module, "_COL_CHUNK_ELEMS", 3 * 2 * 64)
    monkeypatch.setattr(hybrid_module, "_ROW_CHUNK_ELEMS", 1)
    chunked = HybridGraphBuilder(params).build(VisualTokens(feats, layout=layout))
    assert chunked._col_chunks()[0] == slice(0, 3)
    assert torch.equal(chunked.dense(block_size=17), ref)


def test_spatial_terms_need_a_layout_and_say_so():
    tokens = VisualTokens(torch.randn(1, 16, 8))
    cases = [
        (HybridParams(semantic_weight=0.5), r"semantic_weight=0.5 < 1"),
        (HybridParams(rule="or", semantic_weight=1.0), "rule: or"),
    ]
    for params, why in cases:
        with pytest.raises(InputError, match=f"graph 'hybrid' uses spatial proximity \\({why}\\).*Layout"):
            HybridGraphBuilder(params).build(tokens)
    with pytest.raises(InputError, match="graph 'spatial' links tokens by grid position"):
        SpatialGraphBuilder().build(tokens)
    # Purely semantic graphs need no layout.
    assert SemanticGraphBuilder().build(tokens).rows(torch.zeros(1, 1, dtype=torch.long)).shape == (1, 1, 16)
    assert HybridGraphBuilder(HybridParams(semantic_weight=1.0)).build(tokens).dense().shape == (1, 16, 16)


def test_other_vector_sources_are_required_by_the_pipeline():
    spec = {"scorer": "attention", "graph": {"name": "hybrid", "source": "keys", "semantic_weight": 1.0}, "selector": "greedy_mis"}
    pruner = build_pruner(spec)
    tokens = VisualTokens(torch.randn(1, 16, 8), attention=torch.rand(1, 16))
    with pytest.raises(InputError, match=r"graph 'hybrid'.*needs VisualTokens.keys"):
        pruner.select(tokens, keep=4)
    keys = torch.eye(16).unsqueeze(0)
    keys[0, 1] = keys[0, 0]
    with_keys = VisualTokens(torch.randn(1, 16, 8), attention=torch.linspace(1, 0, 16).unsqueeze(0), keys=keys)
    assert pruner.select(with_keys, keep=4).tolist() == [[0, 1, 2, 3]]  # pivots 0, 1 (duplicates allowed), MIS 2, 3
    no_pivots = build_pruner({**spec, "selector": {"name": "greedy_mis", "pivot_ratio": 0.0}})
    assert no_pivots.select(with_keys, keep=4).tolist() == [[0, 2, 3, 4]]  # 1 duplicates 0 in key space


def test_padding_and_self_have_no_edges():
    feats = torch.ones(1, 6, 4)  # all identical: every valid pair is an edge
    mask = torch.tensor([[True, True, False, True, False, True]])
    adj = SemanticGraphBuilder().build(VisualTokens(feats, mask=mask)).dense()[0]
    valid = mask[0]
    expected = valid.unsqueeze(0) & valid.unsqueeze(1) & ~torch.eye(6, dtype=torch.bool)
    assert torch.equal(adj, expected)

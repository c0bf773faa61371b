"""`maxmin` and `dpp` return their picks in pick order, the reference's, whichever way rows are computed.

The pipeline sorts indices, so these tests call the selectors directly. Every way of reading the graph
(the dense matrix, row blocks of the upper triangle with batches of fetched rows, one row per pick)
must give the same picks in the same order; so must the reference loops on the full matrix.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tokcompress
from tokcompress import Layout, VisualTokens
from tokcompress.catalog import get_catalog


def divprune_order(x: torch.Tensor, keep: int) -> list[int]:
    """DivPrune's loop on the dense 1 - cos: second-smallest column entry first, then column minima."""
    unit = x / x.norm(dim=1, keepdim=True)
    dist = 1.0 - unit @ unit.T
    picks: list[int] = []
    for i in range(keep):
        scores = dist.topk(2, dim=0, largest=False).values[1] if i == 0 else dist[picks].min(dim=0).values
        picks.append(int(scores.argmax()))
    return picks


def cdpruner_order(x: torch.Tensor, r: torch.Tensor, keep: int) -> list[int]:
    """CDPruner's fast greedy MAP on the dense kernel r_i S_ij r_j."""
    unit = x / x.norm(dim=1, keepdim=True)
    kernel = r[:, None] * (unit @ unit.T) * r[None, :]
    cis = torch.zeros(keep, x.shape[0])
    d2 = torch.diagonal(kernel).clone()
    picks: list[int] = []
    for i in range(keep):
        j = int(d2.argmax())
        picks.append(j)
        e = (kernel[j] - cis[:i, j] @ cis[:i]) / d2[j].sqrt()
        cis[i] = e
        d2 -= e**2
        d2[j] = float("-inf")
    return picks


def picks(spec: dict, tokens: VisualTokens, keep: int) -> torch.Tensor:
    """The selector's own output, before the pipeline sorts it."""
    p = tokcompress.build_pruner(spec)
    scores = p.scorer.score(tokens) if p.scorer is not None else None
    return p.selector.select(tokens, scores, p.graph.build(tokens), keep)


DIVPRUNE = {"graph": "cosine", "selector": {"name": "maxmin"}}
CDPRUNER = {"scorer": "attention", "graph": "cosine", "selector": {"name": "dpp"}}
# Row access modes: dense; no dense matrix (upper-triangle blocks, rows fetched in batches); odd
# block and batch sizes (a last block merged into the one before); one row per pick.
MODES = [{}, {"dense_max_bytes": 0}, {"dense_max_bytes": 0, "block_size": 13, "fetch_rows": 9}, {"dense_max_bytes": 0, "fetch_rows": 1}]


def with_selector(spec: dict, **params) -> dict:
    return {**spec, "selector": {**spec["selector"], **params}}


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(40, 90), data=st.data())
def test_maxmin_picks_in_the_reference_order(seed, n, data):
    x = torch.randn(n, 32, generator=torch.Generator().manual_seed(seed))
    keep = data.draw(st.integers(2, n - 1))
    expected = divprune_order(x, keep)
    for mode in MODES:
        assert picks(with_selector(DIVPRUNE, **mode), VisualTokens(x[None]), keep)[0].tolist() == expected, mode


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(40, 90), data=st.data())
def test_dpp_picks_in_the_reference_order(seed, n, data):
    g = torch.Generator().manual_seed(seed)
    x, r = torch.randn(n, n + 8, generator=g), torch.rand(n, generator=g) + 0.1
    keep = data.draw(st.integers(2, n - 1))
    expected = cdpruner_order(x, r, keep)
    tokens = VisualTokens(x[None], attention=r[None])
    for mode in MODES + [{"dense_keep_ratio": 0.0}, {"dense_keep_ratio": 1.0}]:
        assert picks(with_selector(CDPRUNER, **mode), tokens, keep)[0].tolist() == expected, mode


@pytest.mark.parametrize("spec", [DIVPRUNE, CDPRUNER], ids=["maxmin", "dpp"])
def test_every_mode_skips_padding_and_agrees_on_ragged_batches(spec):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 70, 24, generator=g)
    mask = torch.ones(3, 70, dtype=torch.bool)
    mask[1, 50:] = False
    mask[2, ::3] = False  # padding anywhere, holding NaN
    x[~mask] = float("nan")
    tokens = VisualTokens(x, attention=torch.rand(3, 70, generator=g), mask=mask)
    reference = picks(spec, tokens, 20)
    assert bool(torch.gather(mask, 1, reference).all())
    for mode in MODES[1:]:
        assert torch.equal(picks(with_selector(spec, **mode), tokens, 20), reference), mode


def test_dpp_fallback_order_without_the_dense_matrix():
    # three copies of (1, 0): after the first pick (t1, d2 = 1) every d2 is 0, the rest follows the scores
    tokens = VisualTokens(torch.tensor([[[1.0, 0.0]] * 3]), attention=torch.tensor([[0.5, 1.0, 0.75]]))
    for mode in MODES + [{"dense_keep_ratio": 1.0}]:
        assert picks(with_selector(CDPRUNER, **mode), tokens, 3).tolist() == [[1, 2, 0]], mode


# -- CUDA: no host sync per pick ------------------------------------------------------------------
SELECTORS = sorted(get_catalog().components["selector"])


def _spec(selector: str) -> dict:
    cls = get_catalog().components["selector"][selector].cls
    spec: dict = {"selector": selector}
    if cls.needs_scores:
        spec["scorer"] = "attention"
    if cls.needs_graph:
        graphs = get_catalog().components["graph"]
        spec["graph"] = next(n for n, e in graphs.items() if e.cls.provides == cls.needs_graph)
    return spec


def _cuda_tokens() -> VisualTokens:
    g = torch.Generator().manual_seed(0)
    b, n, d = 2, 256, 64  # random 64-d features: no cosine near 0.8, so a MIS finishes in one window

    def randn(*shape):
        return torch.randn(*shape, generator=g).cuda()

    return VisualTokens(
        randn(b, n, d), attention=torch.rand(b, n, generator=g).cuda(), keys=randn(b, n, 8),
        image_embeds=randn(b, n, 8), text_keys=randn(b, 4, 8), text_embeds=randn(b, 4, 8),
        text_features=randn(b, 4, d), layout=Layout.grid(16, 16),
    )


def _syncs(fn) -> int:
    """Synchronising CUDA calls made by `fn` (torch's sync debug mode, counted as warnings)."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("selector", SELECTORS)
def test_cuda_host_syncs_do_not_grow_with_the_picks(selector):
    tokens = _cuda_tokens()
    pruner = tokcompress.build_pruner(_spec(selector))
    pruner.select(tokens, keep=16)  # warm-up: lazy initialisation may synchronise once
    few, many = (_syncs(lambda k=k: pruner.select(tokens, keep=k)) for k in (16, 48))
    assert few == many, f"{selector}: {few} host syncs for 16 picks, {many} for 48"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("spec", [DIVPRUNE, CDPRUNER, with_selector(DIVPRUNE, dense_max_bytes=0)], ids=["maxmin", "dpp", "maxmin-rows"])
def test_cuda_diversity_selection_never_synchronises(spec):
    tokens = _cuda_tokens()
    p = tokcompress.build_pruner(spec)
    scores = p.scorer.score(tokens) if p.scorer is not None else None
    graph = p.graph.build(tokens)
    expected = picks(spec, VisualTokens(tokens.features.cpu(), attention=tokens.attention.cpu()), 24)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = p.selector.select(tokens, scores, graph, 24)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert got.is_cuda and got.shape == (2, 24)
    for row, ref in zip(got.cpu().tolist(), expected.tolist()):  # GPU rounding may break a near-tie differently
        assert len(set(row) & set(ref)) >= 20

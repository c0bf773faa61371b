"""`maxmin` and `dpp` return their picks in pick order, the reference's, whichever way rows are computed.

The pipeline sorts indices, so these tests call the selectors directly. Every way of reading the graph
(the dense matrix, row blocks of the upper triangle with batches of fetched rows, one row per pick)
must give the same picks in the same order; so must the reference loops on the full matrix.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tokcompress
from tokcompress import VisualTokens


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

"""Property tests run against every registered selector, built-in or plugin.

For any batch (ties, padding, odd grids) a pruner must return ``[B, keep]`` indices that are
ascending, unique, valid, and the same on a second call.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tokcompress
from tokcompress import Layout, VisualTokens
from tokcompress.catalog import get_catalog

SELECTORS = sorted(get_catalog().components["selector"])


def spec_for(selector: str) -> dict:
    """The smallest spec that lets `selector` run: a scorer and a graph of the kind it needs."""
    catalog = get_catalog()
    cls = catalog.components["selector"][selector].cls
    spec: dict = {"selector": selector}
    if cls().needs_scores():  # with default parameters (maxmin's first pick needs none)
        spec["scorer"] = "attention"
    if cls.needs_graph:
        spec["graph"] = next(n for n, e in catalog.components["graph"].items() if e.cls.provides == cls.needs_graph)
    return spec


@st.composite
def batches(draw):
    b = draw(st.integers(1, 3))
    rows, cols = draw(st.integers(1, 6)), draw(st.integers(1, 7))
    n = rows * cols
    d = draw(st.integers(1, 6))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    ties = draw(st.booleans())
    attention = torch.randint(0, 3, (b, n), generator=gen).float() if ties else torch.rand(b, n, generator=gen)
    features = torch.randint(-1, 2, (b, n, d), generator=gen).float() + 1e-3 if ties else torch.randn(b, n, d, generator=gen)
    valid = [n] * b
    if b > 1 and draw(st.booleans()):  # ragged: the last row is padded at the end
        valid[-1] = draw(st.integers(1, n))
    mask = torch.tensor([[i < v for i in range(n)] for v in valid])
    layouts = [Layout.grid(rows, cols) if v == n else Layout.grid(1, v) for v in valid]
    text = torch.randn(b, 3, 5, generator=gen)
    tokens = VisualTokens(
        features, attention=attention, keys=torch.randn(b, n, 5, generator=gen), image_embeds=torch.randn(b, n, 4, generator=gen),
        text_keys=text, text_embeds=torch.randn(b, 3, 4, generator=gen), mask=mask, layout=layouts,
        text_features=torch.randn(b, 3, d, generator=gen),
    )
    keep = draw(st.integers(1, min(valid)))
    return tokens, keep


@pytest.mark.parametrize("selector", SELECTORS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=batches())
def test_selection_invariants(selector, data):
    tokens, keep = data
    pruner = tokcompress.build_pruner(spec_for(selector))
    out = pruner.select(tokens, keep=keep)
    assert out.dtype == torch.long and out.shape == (tokens.batch_size, keep)
    assert bool((out[:, 1:] > out[:, :-1]).all()), "ascending and unique"
    assert bool(torch.gather(tokens.valid_mask(), 1, out).all()), "valid tokens only"
    assert torch.equal(out, pruner.select(tokens, keep=keep)), "deterministic"

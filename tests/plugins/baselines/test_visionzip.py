"""VisionZip's selection: top-score dominant tokens plus evenly strided targets among the rest."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tokcompress
from tokcompress import InputError, SpecError, VisualTokens


def visionzip(**selector) -> tokcompress.Pruner:
    return tokcompress.build_pruner({"scorer": "attention", "selector": {"name": "visionzip", **selector}})


def test_targets_are_every_step_th_remaining_token():
    # scores rise with the index: dominant (keep 7 - 3 contextual = 4) = t16..t19;
    # remaining t0..t15 (16 tokens), step = 16 // 3 = 5 -> remaining positions 0, 5, 10 -> t0, t5, t10
    t = VisualTokens(torch.randn(1, 20, 2), attention=torch.arange(20.0)[None])
    assert visionzip(contextual=3).select(t, keep=7).tolist() == [[0, 5, 10, 16, 17, 18, 19]]


def test_stride_counts_positions_in_the_remaining_list_not_token_indices():
    # dominant t0, t2, t4 (highest scores); remaining t1, t3, t5, t6, t7, t8, t9 (7), step 7 // 2 = 3
    # -> remaining positions 0, 3 -> t1, t6
    scores = torch.tensor([[9.0, 0, 8, 0, 7, 0, 0, 0, 0, 0]])
    t = VisualTokens(torch.randn(1, 10, 2), attention=scores)
    assert visionzip(contextual=2).select(t, keep=5).tolist() == [[0, 1, 2, 4, 6]]


def test_default_split_is_the_published_one():
    # 64 = 54 dominant + 10 contextual: the top 54 by score all kept, 10 more among the other 522
    g = torch.Generator().manual_seed(0)
    t = VisualTokens(torch.randn(1, 576, 2), attention=torch.rand(1, 576, generator=g), keys=torch.randn(1, 576, 4, generator=g))
    out = tokcompress.build_pruner("visionzip").select(t, keep=64)[0]
    top54 = torch.topk(t.attention[0], 54).indices
    assert bool(torch.isin(top54, out).all())
    rest = sorted(set(range(576)) - set(top54.tolist()))  # 522 tokens, step 522 // 10 = 52
    assert sorted(set(out.tolist()) - set(top54.tolist())) == rest[::52][:10]


def test_more_targets_than_the_stride_allows_fall_back_to_step_one():
    # keep 5 of 6, all contextual: remaining = every token (6), step = max(1, 6 // 5) = 1 -> t0..t4
    t = VisualTokens(torch.randn(1, 6, 2), attention=torch.rand(1, 6))
    assert visionzip(contextual_ratio=1.0).select(t, keep=5).tolist() == [[0, 1, 2, 3, 4]]


def test_cls_first_needs_a_dominant_slot_and_a_real_token_zero():
    t = VisualTokens(torch.randn(1, 6, 2), attention=torch.rand(1, 6))
    with pytest.raises(InputError, match=r"needs a dominant slot for \[CLS\]"):
        visionzip(contextual_ratio=1.0, cls_first=True).select(t, keep=3)
    with pytest.raises(SpecError, match=r"selector 'visionzip'.*no scorer"):
        tokcompress.build_pruner({"selector": "visionzip"})


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 3), n=st.integers(2, 60), data=st.data())
def test_dominant_tokens_are_the_top_scores_and_targets_are_not(seed, b, n, data):
    g = torch.Generator().manual_seed(seed)
    t = VisualTokens(torch.randn(b, n, 3, generator=g), attention=torch.rand(b, n, generator=g))
    keep = data.draw(st.integers(1, n - 1))
    c = data.draw(st.integers(0, keep))
    out = visionzip(contextual=c).select(t, keep=keep)
    for row, scores in zip(out.tolist(), t.attention):
        top = set(torch.topk(scores, keep - c).indices.tolist())
        assert top <= set(row)
        rest = [i for i in range(n) if i not in top]
        step = max(1, len(rest) // c) if c else 1
        assert set(row) - top == set(rest[::step][:c])

"""`text_relevance` (CDPruner): negated mean cosine to the text, min-max normalised, worked by hand."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tokcompress
from tokcompress import InputError, VisualTokens
from tokcompress.scorers.text_relevance import TextRelevanceScorer

S = math.sqrt(0.5)
# Four image tokens in a 2-D joint space and two text tokens along the axes.
IMAGE = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]]])
TEXT = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])


def scorer(**params) -> TextRelevanceScorer:
    return TextRelevanceScorer(TextRelevanceScorer.Params(**params))


def tokens(image=IMAGE, text=TEXT, **extra) -> VisualTokens:
    return VisualTokens(torch.zeros(*image.shape[:2], 3), image_embeds=image, text_embeds=text, **extra)


def test_negated_mean_cosine_then_global_minmax_by_hand():
    # cosines to (t0, t1): token0 (1, 0), token1 (0, 1), token2 (S, S), token3 (-1, 0)
    # means: 0.5, 0.5, S, -0.5 -> negated r = -0.5, -0.5, -S, 0.5
    # min = -S, max = 0.5, span = 0.5 + S; r' = (r + S + 1e-6) / (0.5 + S)
    span = 0.5 + S
    expected = [(-0.5 + S + 1e-6) / span, (-0.5 + S + 1e-6) / span, 1e-6 / span, (0.5 + S + 1e-6) / span]
    got = scorer().score(tokens())
    assert torch.allclose(got, torch.tensor([expected]), rtol=1e-6, atol=1e-7)
    # the least text-like token (token3) is the most relevant: the reference's minus sign
    assert int(got.argmax()) == 3


def test_without_negation_or_normalisation_scores_are_the_mean_cosine():
    got = scorer(negate=False, normalize="none").score(tokens())
    assert torch.allclose(got, torch.tensor([[0.5, 0.5, S, -0.5]]), atol=1e-6)


def test_padded_text_tokens_are_left_out_of_the_mean():
    # a third text token (0, -1) is padding: with it, token1's mean cosine would be (0 + 1 - 1) / 3 = 0
    text = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]])
    mask = torch.tensor([[True, True, False]])
    got = scorer(normalize="none", negate=False).score(tokens(text=text, text_mask=mask))
    assert torch.allclose(got, torch.tensor([[0.5, 0.5, S, -0.5]]), atol=1e-6)


def test_scope_row_normalises_each_sample_alone_and_batch_spans_the_batch():
    # row 1 = row 0 with token3 replaced by (1, 0): its raw r are -0.5, -0.5, -S, -0.5
    image = torch.cat([IMAGE, torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]]])])
    t = tokens(image=image, text=TEXT.expand(2, -1, -1))
    row = scorer().score(t)
    # row scope: row 1 has min -S, max -0.5, span S - 0.5 -> token0 = (S - 0.5 + 1e-6) / (S - 0.5) ~ 1
    assert row[1, 0].item() == pytest.approx((S - 0.5 + 1e-6) / (S - 0.5), rel=1e-5)
    batch = scorer(scope="batch").score(t)
    # batch scope: min -S and max 0.5 over both rows -> row 1's token0 = (-0.5 + S + 1e-6) / (0.5 + S)
    assert batch[1, 0].item() == pytest.approx((-0.5 + S + 1e-6) / (0.5 + S), rel=1e-5)
    assert torch.allclose(row[0], batch[0]), "row 0 holds the batch extremes"


def test_constant_relevance_scores_one_instead_of_dividing_by_zero():
    image = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]])
    got = scorer().score(tokens(image=image))
    assert torch.equal(got, torch.ones(1, 3))


def test_padding_tokens_do_not_set_the_minimum():
    # a padded fifth token (-1, -1): negated mean cosine S > 0.5, it would be the max if it counted
    image = torch.cat([IMAGE, torch.tensor([[[-1.0, -1.0]]])], dim=1)
    t = tokens(image=image, mask=torch.tensor([[True, True, True, True, False]]))
    got = scorer().score(t)
    assert torch.allclose(got[:, :4], scorer().score(tokens()), atol=1e-7)


def test_mismatched_widths_name_both_fields():
    t = tokens(text=torch.randn(1, 2, 5))
    with pytest.raises(InputError, match=r"image_embeds has width 2 but text_embeds has width 5"):
        scorer().score(t)


def test_pipeline_refuses_tokens_without_text_embeds():
    pruner = tokcompress.build_pruner({"apply": "none", "scorer": "text_relevance", "selector": "topk"})
    with pytest.raises(InputError, match=r"scorer 'text_relevance'.*needs VisualTokens.text_embeds"):
        pruner.select(VisualTokens(torch.randn(1, 4, 3), image_embeds=torch.randn(1, 4, 2)), keep=2)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 3), n=st.integers(2, 12), t=st.integers(1, 4))
def test_minmax_spans_exactly_one_above_a_positive_floor_and_keeps_the_order(seed, b, n, t):
    g = torch.Generator().manual_seed(seed)
    tk = VisualTokens(torch.zeros(b, n, 1), image_embeds=torch.randn(b, n, 3, generator=g), text_embeds=torch.randn(b, t, 3, generator=g))
    r = scorer().score(tk).double()
    raw = scorer(normalize="none").score(tk).double()
    assert torch.allclose(r.amax(dim=1) - r.amin(dim=1), torch.ones(b, dtype=torch.double), atol=1e-4)
    assert bool((r.amin(dim=1) > 0).all()), "eps keeps every token's relevance above zero"
    assert bool(((r[:, :, None] > r[:, None, :]) <= (raw[:, :, None] >= raw[:, None, :])).all()), "monotone"


def test_llm_space_sources_score_features_against_text_features():
    # the same vectors as `features` / `text_features` give the same scores as image_embeds / text_embeds
    t = VisualTokens(IMAGE, text_features=TEXT)
    llm = scorer(image="features", text="text_features")
    assert llm.requires() == frozenset({"text_features"}) and scorer().requires() == frozenset({"image_embeds", "text_embeds"})
    assert torch.equal(llm.score(t), scorer().score(tokens()))
    pruner = tokcompress.build_pruner({"scorer": {"name": "text_relevance", "image": "features", "text": "text_features"},
                                       "selector": "topk"})
    assert pruner.select(t, keep=1).tolist() == [[3]]
    with pytest.raises(InputError, match=r"needs VisualTokens.text_features"):
        pruner.select(VisualTokens(IMAGE, text_embeds=TEXT), keep=1)
    with pytest.raises(InputError, match=r"features has width 2 but text_features has width 5"):
        llm.score(VisualTokens(IMAGE, text_features=torch.randn(1, 2, 5)))

"""`contextual` merge (VisionZip): dropped tokens folded into their most similar target, worked by hand.

The split into dominant and contextual tokens is the selector's (`visionzip` marks the targets); the
merger reads the roles, so the split parameters are declared once."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tokcompress
from tokcompress import InputError, SpecError, VisualTokens
from tokcompress_baselines.visionzip import contextual_count

# Six tokens: features (i, 1); scores make t0, t2 dominant; keys decide which target each dropped token joins.
FEATURES = torch.tensor([[[float(i), 1.0] for i in range(6)]])
SCORES = torch.tensor([[0.9, 0.1, 0.8, 0.2, 0.3, 0.05]])
KEYS = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.9]]])


def visionzip(contextual: int | None = None, **merger) -> tokcompress.Pruner:
    split = {"contextual": contextual} if contextual is not None else {}
    return tokcompress.build_pruner(
        {"scorer": "attention", "selector": {"name": "visionzip", **split}, "merger": {"name": "contextual", **merger}}
    )


def tokens(**extra) -> VisualTokens:
    return VisualTokens(FEATURES, attention=SCORES, keys=KEYS, **extra)


def test_target_plus_mean_of_assigned_tokens():
    # keep 4, contextual 2: dominant = top 2 by score = t0, t2; the rest in order t1, t3, t4, t5,
    # step = 4 // 2 = 2 -> targets t1, t4. Keys: t3 (0.9, 0.1) is closest to t1 (1, 0), t5 (0.2, 0.9) to t4 (0, 1).
    # t1' = f1 + mean(f3) = (1, 1) + (3, 1) = (4, 2); t4' = f4 + f5 = (4, 1) + (5, 1) = (9, 2); t0, t2 unchanged
    out = visionzip(2).compress(tokens(), keep=4)
    assert out.indices.tolist() == [[0, 1, 2, 4]]
    assert out.features.tolist() == [[[0.0, 1.0], [4.0, 2.0], [2.0, 1.0], [9.0, 2.0]]]


def test_mean_combines_target_and_assigned_tokens():
    # t1' = mean(f1, f3) = (2, 1); t4' = mean(f4, f5) = (4.5, 1)
    out = visionzip(2, combine="mean").compress(tokens(), keep=4)
    assert out.features.tolist() == [[[0.0, 1.0], [2.0, 1.0], [2.0, 1.0], [4.5, 1.0]]]


def test_one_target_takes_every_dropped_token_and_a_lonely_target_stays_itself():
    # keep 3, contextual 1: dominant t0, t2; rest t1, t3, t4, t5; step 4 -> target t1
    # t1' = f1 + mean(f3, f4, f5) = (1, 1) + (4, 1) = (5, 2)
    out = visionzip(1).compress(tokens(), keep=3)
    assert out.indices.tolist() == [[0, 1, 2]] and out.features[0, 1].tolist() == [5.0, 2.0]
    # keep 5, contextual 3: dominant t0, t2; rest t1, t3, t4, t5; step 4 // 3 = 1 -> targets t1, t3, t4;
    # t5 (0.2, 0.9) joins t4 (0, 1): cosines 0.976 to t4, 0.217 to t1, 0.323 to t3; t1 and t3 get nothing
    out = visionzip(3).compress(tokens(), keep=5)
    assert out.indices.tolist() == [[0, 1, 2, 3, 4]]
    assert out.features[0].tolist() == [[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [9.0, 2.0]]


def test_equal_similarity_goes_to_the_first_target():
    keys = KEYS.clone()
    keys[0, 5] = torch.tensor([1.0, 1.0])  # t5 equally close to t1 (1, 0) and t4 (0, 1) -> t1
    out = visionzip(2).compress(VisualTokens(FEATURES, attention=SCORES, keys=keys), keep=4)
    # t1' = f1 + mean(f3, f5) = (1, 1) + (4, 1) = (5, 2); t4 alone
    assert out.features[0, 1].tolist() == [5.0, 2.0] and out.features[0, 3].tolist() == [4.0, 1.0]


def test_cls_first_keeps_token_zero_dominant_whatever_its_score():
    scores = SCORES.clone()
    scores[0, 0] = 0.01
    t = VisualTokens(FEATURES, attention=scores, keys=KEYS)
    # without cls_first: dominant = t2 (.8), t4 (.3); rest t0, t1, t3, t5, step 4 -> target t0
    assert visionzip(1).select(t, keep=3).tolist() == [[0, 2, 4]]
    # with it: dominant = t0 + top-1 of the rest (t2); rest t1, t3, t4, t5 -> target t1
    spec = {"scorer": "attention", "selector": {"name": "visionzip", "contextual": 1, "cls_first": True},
            "merger": "contextual"}
    out = tokcompress.build_pruner(spec).compress(t, keep=3)
    assert out.indices.tolist() == [[0, 1, 2]]
    assert out.features[0, 0].tolist() == [0.0, 1.0], "[CLS] is dominant, never a merge target"


def test_contextual_count_follows_the_published_splits():
    # 0.15625 = 10/64: 64 -> 54 + 10, 128 -> 108 + 20, 192 -> 162 + 30
    assert [contextual_count(k, None, 0.15625) for k in (64, 128, 192)] == [10, 20, 30]
    assert contextual_count(5, 7, 0.5) == 5 and contextual_count(100, None, 0.0) == 0


def test_merge_features_come_from_keys_or_features():
    # source features: t3 = (3, 1) and t5 = (5, 1) are both closer to t4 (4, 1) than to t1 (1, 1)
    # t1' = f1 = (1, 1); t4' = (4, 1) + mean((3, 1), (5, 1)) = (8, 2)
    out = visionzip(2, source="features").compress(VisualTokens(FEATURES, attention=SCORES), keep=4)
    assert out.features[0, 1].tolist() == [1.0, 1.0] and out.features[0, 3].tolist() == [8.0, 2.0]


def test_missing_inputs_are_named():
    with pytest.raises(SpecError, match=r"merger 'contextual'.*merges into the targets the selector marks, but selector 'uniform'"):
        tokcompress.build_pruner({"selector": "uniform", "merger": "contextual"})
    with pytest.raises(InputError, match=r"merger 'contextual'.*needs VisualTokens.keys"):
        visionzip(2).compress(VisualTokens(FEATURES, attention=SCORES), keep=4)
    # an all-target merge works after any selector: dropped tokens fold into every kept token
    out = tokcompress.build_pruner({"selector": "uniform", "merger": {"name": "contextual", "targets": "all", "source": "features"}})
    sel = out.compress(VisualTokens(FEATURES), keep=2)
    # kept t1, t4; t0 joins t1, t2 t3 t5 are closer to t4 by feature cosine: t1' = (1,1)+(0,1), t4' = (4,1)+mean((2,1),(3,1),(5,1))
    assert sel.indices.tolist() == [[1, 4]] and sel.merged.tolist() == [[True, True]]
    torch.testing.assert_close(sel.features[0], torch.tensor([[1.0, 2.0], [4 + 10 / 3, 2.0]]))


def test_merged_marks_exactly_the_targets_and_keep_all_is_exact():
    sel = visionzip(2).compress(tokens(), keep=4)
    assert sel.merged.tolist() == [[False, True, False, True]]  # targets t1, t4; dominant t0, t2 untouched
    assert sel.roles.tolist() == [[0, 1, 0, 1]]
    every = visionzip(2).compress(tokens(), keep=6)  # keep-all: nothing dropped, nothing merged (issue: scores were lost)
    assert every.indices.tolist() == [[0, 1, 2, 3, 4, 5]] and torch.equal(every.features, FEATURES)
    assert not bool(every.merged.any())


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 3), n=st.integers(2, 30), data=st.data())
def test_dominant_tokens_keep_their_features_and_merged_targets_are_means(seed, b, n, data):
    g = torch.Generator().manual_seed(seed)
    t = VisualTokens(torch.randn(b, n, 4, generator=g), attention=torch.rand(b, n, generator=g), keys=torch.randn(b, n, 3, generator=g))
    keep = data.draw(st.integers(1, n - 1))
    c = data.draw(st.integers(0, keep))
    out = visionzip(c, combine="mean").compress(t, keep=keep)
    kept_feats = torch.gather(t.features, 1, out.indices[..., None].expand(-1, -1, 4))
    changed = ~torch.isclose(out.features, kept_feats).all(dim=-1)
    assert int(changed.sum(dim=1).max()) <= c, "only targets change"
    # a mean of tokens lies within the row's per-coordinate range
    lo, hi = t.features.amin(dim=1, keepdim=True), t.features.amax(dim=1, keepdim=True)
    assert bool(((out.features >= lo - 1e-5) & (out.features <= hi + 1e-5)).all())
    if c == 0:
        assert torch.equal(out.features, kept_feats)

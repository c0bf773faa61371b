"""DART's pivot selector: pivots by key L1 norm, least-similar picks per pivot, visiting order, counts."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tokcompress
from tokcompress import InputError, SpecError, VisualTokens


def at_angles(*degrees: float) -> torch.Tensor:
    rad = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([rad.cos(), rad.sin()], dim=-1).float()[None]


def dart(**selector) -> tokcompress.Pruner:
    return tokcompress.build_pruner({"scorer": {"name": "key_norm", "p": 1}, "selector": {"name": "dart_pivots", **selector}})


# Eight visual tokens at these angles; key L1 norms make t2 the image pivot. Three text tokens after the
# image; text key norms make text token 1 the text pivot, and its hidden state points at 180 degrees.
ANGLES = (0, 20, 45, 90, 135, 180, 225, 300)
IMAGE_KEYS = torch.tensor([[[1.0], [2.0], [9.0], [3.0], [4.0], [5.0], [6.0], [7.0]]])
TEXT_KEYS = torch.tensor([[[2.0], [8.0], [1.0]]])
TEXT_FEATURES = torch.tensor([[[0.0, 1.0], [-1.0, 0.0], [0.0, 1.0]]])


def one_image_one_text() -> VisualTokens:
    return VisualTokens(at_angles(*ANGLES), keys=IMAGE_KEYS, text_keys=TEXT_KEYS, text_features=TEXT_FEATURES)


# Cosines to the image pivot t2 (45 deg): t0 .707, t1 .906, t3 .707, t4 0, t5 -.707, t6 -1, t7 cos 255 = -.259
# Cosines to the text pivot (180 deg):    t0 -1, t1 -.940, t3 0, t4 .707, t5 1, t6 .707, t7 cos 120 = -.5
# keep = 1 + 2 * 3: each pivot takes the 3 least similar tokens still in the pool.
IMAGE_FIRST = [[0, 1, 2, 3, 5, 6, 7]]  # image: t6, t5, t7; text then: t0, t1, t3 -> t4 dropped
TEXT_FIRST = [[0, 1, 2, 4, 5, 6, 7]]  # text: t0, t1, t7; image then: t6, t5, t4 -> t3 dropped


def test_score_order_visits_image_pivots_then_text_pivots():
    assert dart(pivot_image=1, pivot_text=1).select(one_image_one_text(), keep=7).tolist() == IMAGE_FIRST


def test_set_compat_visits_pivots_in_python_set_order_of_absolute_positions():
    # image pivot at image_start + 2, text pivot at image_start + 8 + 1. A set of two small ints sits in
    # an 8-slot table and iterates by value mod 8:
    assert list(set([2, 9])) == [9, 2] and list(set([8, 15])) == [8, 15]
    # image_start 0: {2, 9} -> text pivot first; image_start 6: {8, 15} -> image pivot first
    t = one_image_one_text()
    assert dart(pivot_image=1, pivot_text=1, pivot_order="set_compat", image_start=0).select(t, keep=7).tolist() == TEXT_FIRST
    assert dart(pivot_image=1, pivot_text=1, pivot_order="set_compat", image_start=6).select(t, keep=7).tolist() == IMAGE_FIRST


def test_index_order_differs_from_score_order():
    # Two image pivots, no text: t3 (key 9) and t2 (key 8); t3 moved to 100 deg.
    # cos to t2 (45): t0 .707, t1 .906, t4 0, t5 -.707, t6 -1, t7 -.259
    # cos to t3 (100): t0 -.174, t1 .174, t4 .819, t5 .174, t6 -.574, t7 cos 200 = -.940
    # keep = 2 + 2 * 2. index order (t2 first): t2 takes t6, t5; t3 takes t7, t0 -> [0, 2, 3, 5, 6, 7]
    # score order (t3 first): t3 takes t7, t6; t2 takes t5, t4 -> [2, 3, 4, 5, 6, 7]
    keys = torch.tensor([[[1.0], [2.0], [8.0], [9.0], [3.0], [4.0], [5.0], [6.0]]])
    t = VisualTokens(at_angles(0, 20, 45, 100, 135, 180, 225, 300), keys=keys)
    assert dart(pivot_image=2, pivot_text=0, pivot_order="index").select(t, keep=6).tolist() == [[0, 2, 3, 5, 6, 7]]
    assert dart(pivot_image=2, pivot_text=0, pivot_order="score").select(t, keep=6).tolist() == [[2, 3, 4, 5, 6, 7]]


def test_exact_count_gives_the_remainder_to_the_earlier_visits():
    # keep 6 = 1 pivot + 5 picks over 2 pivots -> 3 for the image pivot (visited first), 2 for the text one:
    # image: t6, t5, t7; text: t0, t1
    assert dart(pivot_image=1, pivot_text=1).select(one_image_one_text(), keep=6).tolist() == [[0, 1, 2, 5, 6, 7]]


def test_dart_compat_refuses_counts_dart_cannot_keep():
    with pytest.raises(InputError, match=r"keeps pivot_image \+ P \* TOKEN_TOPK = 1 \+ 2 \* t tokens, but keep=6; use keep=5 or 7"):
        dart(pivot_image=1, pivot_text=1, count_mode="dart_compat").select(one_image_one_text(), keep=6)
    got = dart(pivot_image=1, pivot_text=1, count_mode="dart_compat").select(one_image_one_text(), keep=7)
    assert got.tolist() == IMAGE_FIRST


def test_padded_text_tokens_cannot_be_pivots():
    # mask out text token 1 (the largest key norm): same result as if it were not there at all
    t = one_image_one_text()
    masked = VisualTokens(t.features, keys=t.keys, text_keys=TEXT_KEYS, text_features=TEXT_FEATURES,
                          text_mask=torch.tensor([[True, False, True]]))
    without = VisualTokens(t.features, keys=t.keys, text_keys=TEXT_KEYS[:, [0, 2]], text_features=TEXT_FEATURES[:, [0, 2]])
    pruner = dart(pivot_image=1, pivot_text=1)
    assert torch.equal(pruner.select(masked, keep=5), pruner.select(without, keep=5))


def test_text_inputs_are_required_only_with_text_pivots():
    image_only = VisualTokens(at_angles(*ANGLES), keys=IMAGE_KEYS)
    with pytest.raises(InputError, match=r"selector 'dart_pivots'.*needs VisualTokens.text_features"):
        dart().select(image_only, keep=5)
    assert dart(pivot_image=1, pivot_text=0).select(image_only, keep=3).tolist() == [[2, 5, 6]]  # t2 + t6, t5


def test_set_compat_needs_image_start_and_shapes_must_agree():
    with pytest.raises(SpecError, match=r"set image_start"):
        dart(pivot_order="set_compat")
    bad_width = VisualTokens(at_angles(*ANGLES), keys=IMAGE_KEYS, text_keys=TEXT_KEYS, text_features=torch.randn(1, 3, 5))
    with pytest.raises(InputError, match=r"text_features has width 5 but features have width 2"):
        dart().select(bad_width, keep=5)
    with pytest.raises(InputError, match=r"text_features has shape \(1, 2, 2\); expected \[1, 3, ...\]"):
        VisualTokens(at_angles(*ANGLES), keys=IMAGE_KEYS, text_keys=TEXT_KEYS, text_features=TEXT_FEATURES[:, :2])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 3), n=st.integers(2, 40), t=st.integers(1, 6), data=st.data())
def test_every_order_and_count_mode_keeps_the_image_pivots_and_exactly_keep_tokens(seed, b, n, t, data):
    g = torch.Generator().manual_seed(seed)
    tokens = VisualTokens(
        torch.randn(b, n, 6, generator=g), keys=torch.randn(b, n, 4, generator=g),
        text_keys=torch.randn(b, t, 4, generator=g), text_features=torch.randn(b, t, 6, generator=g),
    )
    p_img, p_txt = data.draw(st.integers(1, 4)), data.draw(st.integers(0, 4))
    order = data.draw(st.sampled_from(["score", "index", "set_compat"]))
    keep = data.draw(st.integers(1, n - 1))
    pruner = dart(pivot_image=p_img, pivot_text=p_txt, pivot_order=order, image_start=data.draw(st.integers(0, 200)))
    out = pruner.select(tokens, keep=keep)
    assert out.shape == (b, keep) and bool((out[:, 1:] > out[:, :-1]).all())
    pivots = torch.topk(tokens.keys.abs().sum(-1), min(p_img, keep), dim=1).indices
    assert all(set(pv.tolist()) <= set(row.tolist()) for pv, row in zip(pivots, out)), "image pivots are always kept"
    assert torch.equal(out, pruner.select(tokens, keep=keep))

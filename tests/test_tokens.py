"""VisualTokens validation: every message names the field, the shape or value, and what was expected."""

from __future__ import annotations

import pytest
import torch

from tokcompress import InputError, Layout, VisualTokens


def feats(b=2, n=4, d=3):
    return torch.randn(b, n, d)


def test_valid_batch_with_every_probe():
    t = VisualTokens(
        feats(), attention=torch.rand(2, 4), keys=torch.randn(2, 4, 5), text_keys=torch.randn(2, 3, 5),
        text_embeds=torch.randn(2, 3, 6), image_embeds=torch.randn(2, 4, 6), text_mask=torch.ones(2, 3, dtype=torch.bool),
        layout=Layout.grid(2),
    )
    assert t.present() == {"features", "attention", "keys", "text_keys", "text_embeds", "image_embeds", "text_mask", "layout"}
    assert t.coords().shape == (2, 4, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(features=torch.randn(4, 3)), r"features must be \[B, N, D\], got shape \(4, 3\)"),
        (dict(features=torch.ones(1, 4, 3, dtype=torch.long)), "features must be floating point, got torch.int64"),
        (dict(features=torch.randn(1, 0, 3)), "B >= 1 and N >= 1"),
        (dict(attention=torch.rand(2, 5)), r"attention has shape \(2, 5\); expected \[2, 4\]"),
        (dict(keys=torch.rand(2, 4)), r"keys has shape \(2, 4\); expected \[2, 4, \.\.\.\]"),
        (dict(mask=torch.ones(2, 4)), r"mask must be a bool tensor of shape \[2, 4\], got \(2, 4\) torch.float32"),
        (dict(mask=torch.tensor([[True] * 4, [False] * 4])), r"mask: rows \[1\] have no valid token"),
        (dict(text_mask=torch.ones(2, 3, dtype=torch.bool)), "text_mask given without any text field"),
        (dict(layout=Layout.grid(3)), r"layout\[0\] \(image 3x3\) describes 9 tokens but row 0 has 4 valid tokens"),
        (dict(layout=[Layout.grid(2)]), "layout has 1 entries for a batch of 2"),
        (dict(attention=torch.tensor([[0.1, float("nan"), 0.2, 0.3]] * 2)), r"attention has non-finite values .* first at index \[0, 1\]"),
    ],
)
def test_bad_inputs_are_named(kwargs, message):
    kwargs.setdefault("features", feats())
    with pytest.raises(InputError, match=message):
        VisualTokens(**kwargs)


def test_nan_features_are_refused_but_padding_may_hold_anything():
    f = feats()
    f[1, 2, 0] = float("inf")
    with pytest.raises(InputError, match=r"features has non-finite values .* first at index \[1, 2, 0\]"):
        VisualTokens(f)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    t = VisualTokens(f, mask=mask, layout=[Layout.grid(2), Layout.grid(1, 2)])
    assert t.valid_counts().tolist() == [4, 2]
    assert t.coords()[1].tolist() == [[0, 0, 0], [0, 0, 1], [-1, -1, -1], [-1, -1, -1]]


def test_check_values_false_skips_only_the_scan_of_values():
    f = feats()
    f[0, 1, 1] = float("nan")
    t = VisualTokens(f, attention=torch.full((2, 4), float("inf")), check_values=False)
    assert t.present() == {"features", "attention"}
    assert t.rows([1]).check_values is False
    with pytest.raises(InputError, match=r"attention has shape \(2, 3\)"):
        VisualTokens(f, attention=torch.rand(2, 3), check_values=False)


def test_text_fields_must_agree_on_the_text_length():
    with pytest.raises(InputError, match=r"text_embeds has shape \(2, 5, 2\); expected \[2, 3, \.\.\.\]"):
        VisualTokens(feats(), text_keys=torch.randn(2, 3, 2), text_embeds=torch.randn(2, 5, 2))

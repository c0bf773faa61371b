"""`Budget`: one rounding rule and one validation for the pruner, the integration and the study tooling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tokcompress
from tokcompress import InputError, Layout, VisualTokens
from tokcompress.budget import Budget, share


@pytest.mark.parametrize("count, fraction, expected", [(576, 0.25, 144), (10, 0.7, 7), (64, 0.15625, 10), (192, 0.15625, 30),
                                                      (576, 0.111, 63), (5, 0.0, 0), (3, 1.0, 3)])
def test_share_floors_with_a_tolerance_for_binary_float_error(count, fraction, expected):
    assert share(count, fraction) == expected


def test_shorthands_labels_and_per_row_counts():
    assert Budget.model_validate(8) == Budget(keep=8) and Budget.model_validate(0.25) == Budget(ratio=0.25)
    assert Budget(keep=[4, 2]).label == "keep=4,2" and Budget(ratio=0.1).label == "ratio=0.1"
    assert Budget(keep=[4, 2]).counts([10, 10]) == [4, 2]
    assert Budget(ratio=0.25).counts([16, 32, 3]) == [4, 8, 1]  # never below one token
    assert Budget(keep=100).counts([16]) == [16]  # at or above n keeps everything
    assert Budget.of(np.int64(3)).keep == 3 and Budget.of(ratio=np.float32(0.25)).ratio == 0.25
    with pytest.raises(InputError, match="keep has 2 per-row counts for a batch of 3 rows"):
        Budget(keep=[4, 2]).counts([5, 5, 5])


@pytest.mark.parametrize("kwargs, message", [({"keep": True}, r"keep must be an int, got True \(bool\)"),
                                             ({"keep": [3, 0]}, r"keep must be >= 1, got 0"),
                                             ({"ratio": float("nan")}, r"ratio must be a number in \(0, 1\], got nan"),
                                             ({"ratio": True}, "ratio must be a number"),
                                             ({"keep": []}, "a per-row list needs at least one count")])
def test_bad_budgets_name_the_value(kwargs, message):
    with pytest.raises(InputError, match=message):
        Budget.of(**kwargs)


def test_pruner_takes_per_row_budgets_and_says_where_rows_end():
    g = torch.Generator().manual_seed(0)
    tokens = VisualTokens(torch.randn(3, 9, 4, generator=g), attention=torch.rand(3, 9, generator=g))
    pruner = tokcompress.build_pruner("fastv")
    sel = pruner.prune(tokens, keep=[2, 5, 3])
    assert sel.counts == [2, 5, 3] and sel.indices.shape == (3, 5)
    assert sel.mask.tolist() == [[True] * 2 + [False] * 3, [True] * 5, [True] * 3 + [False] * 2]
    for b, k in enumerate([2, 5, 3]):  # each row equals that row pruned alone
        alone = pruner.select(tokens.rows([b]), keep=k)[0]
        assert torch.equal(sel.row(b), alone)
        assert torch.equal(sel.features[b, :k], tokens.features[b, alone])
    with pytest.raises(InputError, match="select returns one \\[B, M\\] tensor: use Pruner.prune"):
        pruner.select(tokens, keep=[2, 5, 3])


@given(counts=st.lists(st.integers(1, 12), min_size=1, max_size=4), ratio=st.floats(0.01, 1.0))
def test_ratio_budgets_resolve_per_row_like_every_caller(counts, ratio):
    n = max(counts)
    mask = torch.tensor([[i < c for i in range(n)] for c in counts])
    tokens = VisualTokens(torch.randn(len(counts), n, 3), mask=mask if not bool(mask.all()) else None,
                          layout=[Layout.grid(1, c) for c in counts])
    sel = tokcompress.build_pruner("uniform").prune(tokens, ratio=ratio)
    assert sel.counts == Budget(ratio=ratio).counts(counts)
    assert all(bool(mask[b, sel.row(b)].all()) for b in range(len(counts)))


def test_split_shares_then_gives_the_leftover_to_the_largest_remainders():
    from tokcompress.budget import split

    assert split(3, [4, 8]) == [1, 2]
    assert split(4, [4, 8]) == [1, 3]  # 1.33 / 2.67
    assert split(5, [4, 4, 4]) == [2, 2, 1]  # equal remainders: the earlier parts first
    assert split(100, [29, 71]) == [29, 71]  # 100 * 0.29 is 28.999...: the share's epsilon keeps the 29th
    assert split(12, [4, 8]) == [4, 8]

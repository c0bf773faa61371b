"""Controls: uniform spacing worked by hand, seeded random reproducible and seed-sensitive."""

from __future__ import annotations

import torch

import tokcompress
from tokcompress import Grid, Layout, VisualTokens


def test_uniform_single_grid_follows_floor_k_plus_half_times_n_over_keep():
    t = VisualTokens(torch.randn(1, 16, 2), layout=Layout.grid(4))
    # n=16, keep=4: floor((k + 0.5) * 4) = 2, 6, 10, 14
    assert tokcompress.build_pruner("uniform").select(t, keep=4).tolist() == [[2, 6, 10, 14]]
    # keep=3: floor((k + 0.5) * 16 / 3) = floor(2.67), floor(8), floor(13.33) = 2, 8, 13
    assert tokcompress.build_pruner("uniform").select(t, keep=3).tolist() == [[2, 8, 13]]


def test_uniform_splits_the_budget_across_segments_by_size():
    layout = Layout((Grid(2, 2, kind="base"), Grid(2, 4, kind="crop")))  # 4 + 8 tokens
    t = VisualTokens(torch.randn(1, 12, 2), layout=layout)
    # keep=3 -> exact shares 1.0 and 2.0 -> 1 in base: floor(0.5*4)=2; 2 in crop: 4 + floor((k+.5)*4) = 6, 10
    assert tokcompress.build_pruner("uniform").select(t, keep=3).tolist() == [[2, 6, 10]]
    # keep=4 -> shares 1.33 / 2.67: remainders .33 and .67 -> crop gets the extra: base 1, crop 3
    # base: 2; crop: 4 + floor((k + .5) * 8 / 3) = 4 + 1, 4 + 4, 4 + 6
    assert tokcompress.build_pruner("uniform").select(t, keep=4).tolist() == [[2, 5, 8, 10]]


def test_uniform_skips_newline_tokens_unless_the_budget_needs_them():
    layout = Layout((Grid(2, 3, newline=True),))  # tokens: p p p nl p p p nl -> patches at 0,1,2,4,5,6
    t = VisualTokens(torch.randn(1, 8, 2), layout=layout)
    # 6 patches, keep=2: floor((k + .5) * 3) = 1, 4 -> patch positions [1, 5]
    assert tokcompress.build_pruner("uniform").select(t, keep=2).tolist() == [[1, 5]]
    # keep=7 > 6 patches: every token is eligible, floor((k + .5) * 8 / 7) = 0,1,2,4,5,6,7
    assert tokcompress.build_pruner("uniform").select(t, keep=7).tolist() == [[0, 1, 2, 4, 5, 6, 7]]


def test_uniform_skips_padding():
    mask = torch.tensor([[True] * 8, [True] * 4 + [False] * 4])
    t = VisualTokens(torch.randn(2, 8, 2), mask=mask)
    assert tokcompress.build_pruner("uniform").select(t, keep=2).tolist() == [[2, 6], [1, 3]]


def test_random_is_reproducible_per_seed_and_differs_across_seeds():
    t = VisualTokens(torch.randn(2, 100, 2))
    a = tokcompress.build_pruner({"selector": {"name": "random", "seed": 1}}).select(t, keep=10)
    b = tokcompress.build_pruner({"selector": {"name": "random", "seed": 1}}).select(t, keep=10)
    c = tokcompress.build_pruner({"selector": {"name": "random", "seed": 2}}).select(t, keep=10)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_random_subset_of_a_sample_does_not_depend_on_its_batch_position():
    pruner = tokcompress.build_pruner({"selector": {"name": "random", "seed": 3}})
    mask = torch.tensor([[True] * 100, [True] * 60 + [False] * 40])
    batch = pruner.select(VisualTokens(torch.randn(2, 100, 2), mask=mask), keep=10)
    alone = [pruner.select(VisualTokens(torch.randn(1, n, 2)), keep=10)[0] for n in (100, 60)]
    assert torch.equal(batch[0], alone[0]) and torch.equal(batch[1], alone[1])

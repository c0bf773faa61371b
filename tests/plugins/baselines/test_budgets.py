"""Reference token counts: DART's odd count, DivPrune's half-to-even rounding, FastV's demo rounding."""

from __future__ import annotations

import pytest
import torch

import tokcompress
from tokcompress import InputError, VisualTokens
from tokcompress_baselines.budgets import dart_reference_keep, divprune_reference_keep, fastv_reference_keep


def test_dart_llava_counts_from_its_readme():
    # TOKEN_TOPK = ceil(T // 8): T = 128 -> 16 -> 4 + 8 * 16 = 132; T = 64 -> 8 -> 68
    assert dart_reference_keep(576) == 132
    assert dart_reference_keep(576, max_num_truncation=64) == 68
    # no truncation: T = 576 * (1 - r): r = 0.778 -> 127.87 // 8 = 15 -> 124; r = 0.889 -> 63.94 // 8 = 7 -> 60
    assert dart_reference_keep(576, max_num_truncation=None, reduction_ratio=0.778) == 124
    assert dart_reference_keep(576, max_num_truncation=None, reduction_ratio=0.889) == 60


def test_dart_qwen_and_llava_next_formulas():
    # qwen: int(N (1 - r) / 8): 234 * 0.222 / 8 = 6.49 -> 6 -> 4 + 48 = 52
    assert dart_reference_keep(234, variant="qwen") == 52
    # llava_next: int(min(320, N - 4) // 8): N = 2880 -> 40 -> 324; N = 100 -> 96 // 8 = 12 -> 100
    assert dart_reference_keep(2880, max_num_truncation=None, variant="llava_next") == 324
    assert dart_reference_keep(100, max_num_truncation=None, variant="llava_next") == 100


def test_dart_count_beyond_the_pool_fails_like_the_reference():
    with pytest.raises(InputError, match=r"pool of 60.*issue #18"):
        dart_reference_keep(64)  # 8 x 16 picks from 64 - 4 tokens


def test_divprune_rounds_half_to_even():
    assert divprune_reference_keep(576, 0.098) == 56  # 56.448
    assert divprune_reference_keep(20, 0.125) == 2  # 2.5 -> 2 (the framework's floor also gives 2)
    assert divprune_reference_keep(28, 0.125) == 4  # 3.5 -> 4 (floor would give 3)
    assert tokcompress.resolve_budget(28, ratio=0.125) == 3


def test_fastv_demo_rounding():
    assert fastv_reference_keep(576, 0.75) == 144
    assert fastv_reference_keep(576, 0.5) == 288
    assert fastv_reference_keep(10, 0.75) == 2  # round(2.5) = 2


def test_dart_compat_runs_with_the_reference_count():
    g = torch.Generator().manual_seed(0)
    t = VisualTokens(
        torch.randn(1, 576, 8, generator=g), keys=torch.randn(1, 576, 4, generator=g),
        text_keys=torch.randn(1, 20, 4, generator=g), text_features=torch.randn(1, 20, 8, generator=g),
    )
    pruner = tokcompress.build_pruner(
        {"extends": "dart", "selector": {"name": "dart_pivots", "pivot_order": "set_compat", "image_start": 35, "count_mode": "dart_compat"}}
    )
    assert pruner.select(t, keep=dart_reference_keep(576)).shape == (1, 132)
    with pytest.raises(InputError, match="dart_reference_keep"):
        pruner.select(t, keep=128)

"""The D2Pruner presets end to end: positional debiasing decides, ablations switch one part off."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import tokcompress
from tokcompress import Layout, VisualTokens, build_pruner, load_spec
from tokcompress.catalog import get_catalog
from tokcompress_d2pruner.analytic_profiles import bottom_heavy

PRESETS = [
    "d2pruner",
    "d2pruner-grounding",
    "d2pruner-no-debias",
    "d2pruner-no-pivots",
    "d2pruner-pivots-only",
    "d2pruner-semantic-only",
    "d2pruner-spatial-only",
]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_and_record_their_pruning_layer_in_file(name):
    preset = get_catalog().preset(name)
    raw = yaml.safe_load(Path(preset.path).read_text())
    assert raw["apply"] == {"placement": "layer", "layer": 2}
    spec = load_spec(name)
    assert spec.placement == "layer" and spec.apply.layer == 2
    assert build_pruner(spec).selector.name == "greedy_mis"


def test_ablations_change_exactly_one_part_of_d2pruner():
    base = load_spec("d2pruner").to_dict()
    assert base["graph"]["semantic_weight"] == 1.0 and base["graph"]["threshold"] == 0.8
    assert base["selector"]["pivot_ratio"] == 0.7 and base["debiaser"]["eps"] == 1e-7
    changed = {}
    for name in PRESETS[1:]:
        spec = load_spec(name).to_dict()
        changed[name] = sorted(k for k in set(base) | set(spec) if k not in ("name", "description") and base.get(k) != spec.get(k))
    assert changed == {
        "d2pruner-grounding": ["debiaser", "graph"],
        "d2pruner-no-debias": ["debiaser"],
        "d2pruner-no-pivots": ["selector"],
        "d2pruner-pivots-only": ["selector"],
        "d2pruner-semantic-only": ["graph"],
        "d2pruner-spatial-only": ["graph"],
    }
    assert load_spec("d2pruner-grounding").graph.semantic_weight == 0.5
    assert load_spec("d2pruner-no-pivots").selector.pivot_ratio == 0.0
    assert load_spec("d2pruner-pivots-only").selector.pivot_ratio == 1.0
    assert "debiaser" not in load_spec("d2pruner-no-debias").to_dict()


def _bottom_biased_scene(rows=8, cols=8, seed=0):
    """Attention = a bottom-heavy positional bias (not the profile's exact values) x noise, with a
    3x2 object in the upper part drawing 3x the attention its position would get."""
    g = torch.Generator().manual_seed(seed)
    bias = bottom_heavy(rows, cols, peak=12.0, width=0.2).flatten()
    attention = bias * (1 + 0.1 * torch.rand(rows * cols, generator=g))
    obj = [r * cols + c for r in (1, 2) for c in (2, 3, 4)]
    attention[obj] *= 3
    feats = torch.randn(1, rows * cols, 64, generator=g)  # distinct content: no semantic edges
    return VisualTokens(feats, attention=attention.unsqueeze(0), layout=Layout.grid(rows, cols)), obj


@pytest.mark.parametrize("device", DEVICES)
def test_debiasing_keeps_the_object_that_raw_attention_misses(device):
    tokens, obj = _bottom_biased_scene()
    tokens = VisualTokens(tokens.features.to(device), attention=tokens.attention.to(device), layout=tokens.layout)
    kept = build_pruner("d2pruner").select(tokens, keep=6)[0].tolist()
    assert kept == obj
    raw = build_pruner("d2pruner-no-debias").select(tokens, keep=6)[0].tolist()
    assert not set(raw) & set(obj)
    assert min(raw) >= 6 * 8  # the raw ranking keeps bottom-row tokens


def test_semantic_only_equals_the_general_preset_and_pivots_only_is_debiased_topk():
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(12, 32, generator=g)
    feats = (centres[torch.randint(0, 12, (2, 144), generator=g)] + 0.2 * torch.randn(2, 144, 32, generator=g))
    tokens = VisualTokens(feats, attention=torch.rand(2, 144, generator=g), layout=Layout.grid(12))
    general = build_pruner("d2pruner").select(tokens, keep=40)
    assert torch.equal(build_pruner("d2pruner-semantic-only").select(tokens, keep=40), general)
    topk = {"scorer": "attention", "debiaser": load_spec("d2pruner").debiaser.model_dump(), "selector": "topk"}
    assert torch.equal(build_pruner("d2pruner-pivots-only").select(tokens, keep=40), build_pruner(topk).select(tokens, keep=40))
    # The diversity stage matters here: with 12 content clusters, MIS keeps other tokens than top-k.
    assert not torch.equal(general, build_pruner(topk).select(tokens, keep=40))


@settings(max_examples=15, deadline=None)
@given(rows=st.integers(2, 40), cols=st.integers(2, 40), name=st.sampled_from(["d2pruner", "d2pruner-grounding"]))
def test_general_and_grounding_presets_work_on_a_single_grid_of_any_size(rows, cols, name):
    n = rows * cols
    g = torch.Generator().manual_seed(n)
    feats, att = torch.randn(1, n, 16, generator=g), torch.rand(1, n, generator=g)
    tokens = VisualTokens(feats, attention=att, layout=Layout.grid(rows, cols))
    keep = max(1, n // 9)
    out = build_pruner(name).select(tokens, keep=keep)
    assert out.shape == (1, keep) and bool((out[:, 1:] > out[:, :-1]).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_inputs_select_like_their_fp32_values(dtype):
    tokens, _ = _bottom_biased_scene(24, 24, seed=3)
    low = VisualTokens(tokens.features.to(dtype), attention=tokens.attention.to(dtype), layout=tokens.layout)
    up = VisualTokens(low.features.float(), attention=low.attention.float(), layout=tokens.layout)
    for name in ("d2pruner", "d2pruner-grounding"):
        assert torch.equal(build_pruner(name).select(low, keep=64), build_pruner(name).select(up, keep=64))


def test_ragged_batch_matches_rows_pruned_alone():
    g = torch.Generator().manual_seed(5)
    shapes = [(24, 24), (20, 28)]
    N = max(r * c for r, c in shapes)
    feats = torch.randn(2, N, 32, generator=g)
    att = torch.rand(2, N, generator=g)
    mask = torch.zeros(2, N, dtype=torch.bool)
    for b, (r, c) in enumerate(shapes):
        mask[b, : r * c] = True
    layouts = [Layout.grid(r, c) for r, c in shapes]
    tokens = VisualTokens(feats, attention=att, mask=mask, layout=layouts)
    for name in ("d2pruner", "d2pruner-grounding", "d2pruner-spatial-only"):
        pruner = build_pruner(name)
        both = pruner.select(tokens, keep=64)
        for b, (r, c) in enumerate(shapes):
            n = r * c
            alone = VisualTokens(feats[b : b + 1, :n], attention=att[b : b + 1, :n], layout=layouts[b])
            assert torch.equal(both[b], pruner.select(alone, keep=64)[0]), (name, b)


def test_d2pruner_without_layout_on_llava_sized_rows():
    tokens = VisualTokens(torch.randn(1, 576, 16), attention=torch.rand(1, 576))
    with_layout = VisualTokens(tokens.features, attention=tokens.attention, layout=Layout.grid(24))
    assert torch.equal(build_pruner("d2pruner").select(tokens, keep=64), build_pruner("d2pruner").select(with_layout, keep=64))
    with pytest.raises(tokcompress.InputError, match="needs VisualTokens.layout"):
        build_pruner("d2pruner").select(VisualTokens(torch.randn(1, 500, 16), attention=torch.rand(1, 500)), keep=64)

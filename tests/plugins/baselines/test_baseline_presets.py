"""Every baseline preset loads by name, states its placement, runs, and mixes with other methods' stages."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tokcompress
from tokcompress import InputError, Layout, SpecError, VisualTokens

PRESETS = {
    # name: (placement, layer or None, stages)
    "fastv": ("layer", 2, {"scorer": "attention", "selector": "topk"}),
    "dart": ("layer", 2, {"scorer": "key_norm", "selector": "dart_pivots"}),
    "divprune": ("pre_llm", None, {"graph": "cosine", "selector": "maxmin"}),
    "cdpruner": ("none", None, {"scorer": "text_relevance", "graph": "cosine", "selector": "dpp"}),
    "cdpruner-llm": ("pre_llm", None, {"scorer": "text_relevance", "graph": "cosine", "selector": "dpp"}),
    "visionzip": ("vision", None, {"scorer": "attention", "selector": "visionzip", "merger": "contextual"}),
    "random": ("pre_llm", None, {"selector": "random"}),
    "uniform": ("pre_llm", None, {"selector": "uniform"}),
    "pool": ("pre_llm", None, {"selector": "pool", "merger": "pool"}),
}


def full_batch(b: int = 2, n: int = 36, d: int = 8, t: int = 5, seed: int = 0, layout: Layout | None = None) -> VisualTokens:
    """Every probe a baseline may read, as a placement would supply it."""
    g = torch.Generator().manual_seed(seed)
    return VisualTokens(
        torch.randn(b, n, d, generator=g), attention=torch.rand(b, n, generator=g), keys=torch.randn(b, n, 4, generator=g),
        image_embeds=torch.randn(b, n, 3, generator=g), text_keys=torch.randn(b, t, 4, generator=g),
        text_embeds=torch.randn(b, t, 3, generator=g), text_features=torch.randn(b, t, d, generator=g),
        layout=layout or Layout.grid(1, n),
    )


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_composition_and_placement(name):
    placement, layer, stages = PRESETS[name]
    spec = tokcompress.load_spec(name)
    assert spec.placement == placement
    if layer is not None:
        assert spec.apply.layer == layer
    assert {field: block.name for field, block in spec.stages().items()} == stages


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_runs_on_a_full_batch(name):
    pruner = tokcompress.build_pruner(name)
    out = pruner.compress(full_batch(layout=Layout.grid(6, 6)), keep=9)
    assert out.indices.shape == (2, 9) and out.features.shape == (2, 9, 8)
    assert bool((out.indices[:, 1:] > out.indices[:, :-1]).all())


@pytest.mark.parametrize("name", sorted(PRESETS))
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 3), n=st.integers(2, 40), data=st.data())
def test_preset_properties(name, seed, b, n, data):
    tokens = full_batch(b=b, n=n, seed=seed)
    keep = data.draw(st.integers(1, n))
    pruner = tokcompress.build_pruner(name)
    out = pruner.select(tokens, keep=keep)
    assert out.shape == (b, keep), "count"
    assert bool((out[:, 1:] > out[:, :-1]).all()), "unique and ascending"
    assert bool(((out >= 0) & (out < n)).all()), "range"
    assert torch.equal(out, tokcompress.build_pruner(name).select(tokens, keep=keep)), "deterministic (seeded)"


def test_fastv_keeps_the_top_attention_with_ties_to_the_lower_index():
    # attention .1 .5 .5 .3 .9: keep 3 -> t4 (.9), then the tie t1, t2 (.5) -> [1, 2, 4];
    # keep 2 -> t4, then the tie's lower index t1
    t = VisualTokens(torch.randn(1, 5, 2), attention=torch.tensor([[0.1, 0.5, 0.5, 0.3, 0.9]]))
    assert tokcompress.build_pruner("fastv").select(t, keep=3).tolist() == [[1, 2, 4]]
    assert tokcompress.build_pruner("fastv").select(t, keep=2).tolist() == [[1, 4]]


def test_random_preset_depends_on_its_seed():
    tokens = full_batch(n=100)
    a = tokcompress.build_pruner({"extends": "random", "selector": {"name": "random", "seed": 1}}).select(tokens, keep=10)
    b = tokcompress.build_pruner({"extends": "random", "selector": {"name": "random", "seed": 2}}).select(tokens, keep=10)
    assert not torch.equal(a, b)


# -- mix and match ---------------------------------------------------------------------------
MIXES = {
    "fastv scores, cdpruner selection": {"scorer": "attention", "graph": "cosine", "selector": "dpp"},
    "fastv scores, dart pivots": {"scorer": "attention", "selector": {"name": "dart_pivots", "pivot_text": 0}},
    "cdpruner relevance, divprune selection": {"apply": "none", "scorer": "text_relevance", "graph": "cosine",
                                               "selector": {"name": "maxmin", "first": "score"}},
    "dart key norms, visionzip selection and merge": {"scorer": "key_norm", "selector": "visionzip", "merger": "contextual"},
    "fastv selection, visionzip merge": {"scorer": "attention", "selector": "topk", "merger": {"name": "contextual", "targets": "all"}},
    "divprune on CLIP-space embeddings": {"apply": "none", "graph": {"name": "cosine", "source": "image_embeds"}, "selector": "maxmin"},
}


@pytest.mark.parametrize("label", sorted(MIXES))
def test_stages_from_two_methods_validate_and_run(label):
    pruner = tokcompress.build_pruner(MIXES[label])
    out = pruner.compress(full_batch(), keep=7)
    assert out.indices.shape == (2, 7)


def test_fastv_scores_change_what_dpp_keeps():
    tokens = full_batch()
    relevance = tokcompress.build_pruner("cdpruner").select(tokens, keep=7)
    attention = tokcompress.build_pruner(MIXES["fastv scores, cdpruner selection"]).select(tokens, keep=7)
    assert not torch.equal(relevance, attention)


REFUSED_AT_BUILD = {
    "selector needs a graph": ({"scorer": "attention", "selector": "dpp"}, r"needs a similarity graph but the spec has no 'graph' block"),
    "selector needs scores": ({"graph": "cosine", "selector": "dpp"}, r"ranks tokens by score but the spec has no scorer"),
    "merger needs roles": ({"selector": "uniform", "merger": "contextual"}, r"merges into the targets the selector marks, but selector 'uniform'"),
    "placement cannot feed a stage": ({"apply": "pre_llm", "scorer": "attention", "selector": "topk"},
                                      r"needs VisualTokens.attention, which placement 'pre_llm' cannot provide"),
    "unknown stage option": ({"selector": {"name": "dart_pivots", "pivot_order": "sorted"}}, r"pivot_order"),
}


@pytest.mark.parametrize("label", sorted(REFUSED_AT_BUILD))
def test_incompatible_specs_are_refused_when_built(label):
    spec, message = REFUSED_AT_BUILD[label]
    with pytest.raises(SpecError, match=message):
        tokcompress.build_pruner(spec)


REFUSED_AT_CALL = {
    "key_norm without keys": ("dart", "keys", r"scorer 'key_norm'.*needs VisualTokens.keys"),
    "text relevance without text": ("cdpruner", "text_embeds", r"scorer 'text_relevance'.*needs VisualTokens.text_embeds"),
    "dart without text keys": ("dart", "text_keys", r"selector 'dart_pivots'.*needs VisualTokens.text_keys"),
    "visionzip without attention": ("visionzip", "attention", r"scorer 'attention'.*needs VisualTokens.attention"),
    "cosine graph over absent embeddings": (MIXES["divprune on CLIP-space embeddings"], "image_embeds", r"graph 'cosine'.*needs VisualTokens.image_embeds"),
}


@pytest.mark.parametrize("label", sorted(REFUSED_AT_CALL))
def test_missing_inputs_are_refused_when_called(label):
    spec, missing, message = REFUSED_AT_CALL[label]
    full = full_batch()
    fields = {f: getattr(full, f) for f in full.present() if f not in ("layout", missing)}
    with pytest.raises(InputError, match=message):
        tokcompress.build_pruner(spec).select(VisualTokens(**fields), keep=5)

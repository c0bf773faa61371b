"""The handle's life cycle: the model is left exactly as it was; errors are clear; two models coexist."""

from __future__ import annotations

import warnings

import pytest
import torch
from hf_support import FASTV, SUPPRESS, UNIFORM

import tokcompress
from tokcompress.errors import InputError, SpecError
from tokcompress.hf.check import generate_logits, greedy_no_cache
from tokcompress.hf.tiny import FAMILIES, Image, make_inputs


def snapshot(model):
    """Everything attach may touch: hooks, instance attributes, attention implementations, registries."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    hooks = {
        name: tuple(len(getattr(m, attr)) for attr in ("_forward_pre_hooks", "_forward_hooks",
                                                          "_forward_pre_hooks_with_kwargs", "_forward_hooks_with_kwargs"))
        for name, m in model.named_modules()
    }
    attrs = {name: sorted(vars(m)) for name, m in model.named_modules()}
    configs = {name: (m.config._attn_implementation, m.config.to_json_string())
               for name, m in model.named_modules() if hasattr(m, "config") and hasattr(m.config, "to_json_string")}
    return hooks, attrs, configs, sorted(ALL_ATTENTION_FUNCTIONS._global_mapping), sorted(ALL_MASK_ATTENTION_FUNCTIONS._global_mapping)


@pytest.mark.parametrize("family", FAMILIES)
def test_remove_leaves_the_model_exactly_as_before(tiny, family):
    model = tiny(family)
    inputs = make_inputs(model, [[3, Image(), 4]], seed=21)
    logits = model(**inputs).logits  # first call: transformers installs its own output-capture hooks
    before = snapshot(model)
    handle = tokcompress.attach(model, FASTV["layer"], keep=2)
    assert snapshot(model) != before
    model(**inputs)
    assert model.config.text_config._attn_implementation.startswith("tokcompress_probe_")  # installed when first pruning
    handle.remove()
    handle.remove()  # idempotent
    assert snapshot(model) == before
    assert torch.equal(model(**inputs).logits, logits)


def test_exception_inside_the_block_still_restores(tiny):
    model = tiny("qwen3_vl")
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        with tokcompress.attach(model, FASTV["layer"], keep=2):
            raise RuntimeError("boom")
    assert snapshot(model) == before


def test_failed_call_does_not_poison_the_next(tiny):
    model = tiny("llava")
    good = make_inputs(model, [[3, Image(), 4]], seed=22)
    bad = dict(good, pixel_values=good["pixel_values"][:, :, :28])  # wrong image size: the vision tower fails
    with tokcompress.attach(model, FASTV["layer"], keep=2) as handle:
        with pytest.raises(Exception):
            model(**bad)
        model(**good)
    assert handle.stats.visual_after == (2,)


def test_two_models_with_different_pruners(tiny):
    a, b = tiny("llava"), tiny("qwen2_vl")
    ia, ib = make_inputs(a, [[3, Image(), 4]], seed=23), make_inputs(b, [[3, Image(), 4]], seed=24)
    with tokcompress.attach(a, "fastv", keep=3):
        solo_a = generate_logits(a, ia, 3, SUPPRESS)[1]
    with tokcompress.attach(b, UNIFORM["pre_llm"], keep=5):
        solo_b = generate_logits(b, ib, 3, SUPPRESS)[1]
    with tokcompress.attach(a, "fastv", keep=3) as ha, tokcompress.attach(b, UNIFORM["pre_llm"], keep=5) as hb:
        both_b = generate_logits(b, ib, 3, SUPPRESS)[1]
        both_a = generate_logits(a, ia, 3, SUPPRESS)[1]
        assert ha.strategy.probe.name != getattr(getattr(hb.strategy, "probe", None), "name", None)
        assert b.config.text_config._attn_implementation == "sdpa"  # b needs no probe: untouched
    assert torch.equal(both_a, solo_a) and torch.equal(both_b, solo_b)
    assert ha.stats.visual_after == (3,) and hb.stats.visual_after == (5,) and hb.stats.placement == "pre_llm"


def test_attaching_twice_is_refused(tiny):
    model = tiny("llava")
    with tokcompress.attach(model, "fastv", keep=2):
        with pytest.raises(InputError, match="already has a tokcompress pruner"):
            tokcompress.attach(model, "uniform", keep=2)
    tokcompress.attach(model, "uniform", keep=2).remove()  # free again after the block


def test_unsupported_architecture_lists_the_supported_ones():
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, vocab_size=50))
    with pytest.raises(InputError, match="does not support LlamaForCausalLM.*LlavaForConditionalGeneration.*Qwen3VL"):
        tokcompress.attach(model, "fastv", keep=2)


@pytest.mark.parametrize(
    "spec, error, match",
    [
        ({"apply": {"placement": "pre_llm"}, "scorer": "attention", "selector": "topk"}, SpecError,
         r"scorer 'attention'.*needs VisualTokens.attention.*placement 'pre_llm'.*provide it: layer, vision"),
        ({"apply": {"placement": "layer", "layer": 4}, "selector": "uniform"}, InputError, "K=4 is out of range.*1 <= K < 4"),
    ],
)
def test_placement_errors_name_what_is_missing(tiny, spec, error, match):
    with pytest.raises(error, match=match):
        tokcompress.attach(tiny("llava"), spec, keep=2)


def test_vision_placement_outside_llava_names_the_alternatives(tiny):
    with pytest.raises(InputError, match="'vision' is not implemented for 'qwen2_vl'.*'pre_llm' or 'layer'"):
        tokcompress.attach(tiny("qwen2_vl"), "visionzip", keep=2)


@pytest.mark.parametrize("keep, ratio", [(None, None), (2, 0.5), (0, None), (None, 1.5)])
def test_budget_is_checked_at_attach(tiny, keep, ratio):
    with pytest.raises(InputError):
        tokcompress.attach(tiny("llava"), "fastv", keep=keep, ratio=ratio)


def test_freeze_replays_and_checks_the_selection(tiny):
    model = tiny("llava")
    inputs = make_inputs(model, [[3, Image(), 4]], seed=25)
    with tokcompress.attach(model, "fastv", keep=3) as handle:
        with pytest.raises(InputError, match="needs a pruned call first"):
            handle.freeze()
        model(**inputs)
        chosen = handle.last_selection
        handle.freeze([torch.tensor([3, 4, 5])])
        model(**inputs)
        assert handle.last_selection[0].tolist() == [3, 4, 5]
        handle.freeze([torch.tensor([0])])  # position 0 is text
        with pytest.raises(InputError, match="not image tokens"):
            model(**inputs)
        handle.unfreeze()
        model(**inputs)
        assert torch.equal(handle.last_selection[0], chosen[0])


def test_inputs_embeds_only_is_refused(tiny):
    model = tiny("llava")
    inputs = make_inputs(model, [[3, Image(), 4]], seed=26)
    embeds = model.get_input_embeddings()(inputs.pop("input_ids"))
    with tokcompress.attach(model, "fastv", keep=3), pytest.raises(InputError, match="needs input_ids"):
        model(inputs_embeds=embeds, **inputs)


def _constant_pruner(placement):
    from tokcompress.mergers.base import Merger
    from tokcompress.pruner import Pruner
    from tokcompress.selectors.controls import UniformSelector
    from tokcompress.spec import load_spec

    class ConstantMerger(Merger):
        """Replaces every kept visual token by a constant vector, visible downstream."""

        name = "constant_test"

        def merge(self, tokens, keep, roles, scores):
            return torch.full((*keep.shape, tokens.features.shape[-1]), 0.25), torch.ones_like(keep, dtype=torch.bool)

    apply = {"placement": placement, "layer": 2} if placement == "layer" else {"placement": placement}
    spec = load_spec({"apply": apply, "selector": "uniform"})
    return Pruner(spec, selector=UniformSelector(), merger=ConstantMerger())


@pytest.mark.parametrize("placement", ["pre_llm", "layer"])
def test_merged_features_replace_the_kept_visual_tokens(tiny, placement):
    model = tiny("llava")
    inputs = make_inputs(model, [[3, Image(), 4]], seed=27)
    layers = model.model.language_model.layers
    seen = {}
    K = 2 if placement == "layer" else 0
    with tokcompress.attach(model, _constant_pruner(placement), keep=3) as handle:
        hook = layers[K].register_forward_pre_hook(lambda m, a, kw: seen.update(h=a[0].clone()) or None, with_kwargs=True)
        try:
            model(**inputs)
        finally:
            hook.remove()
    hidden = seen["h"][0]
    assert hidden.shape[0] == 3 + 3 + 4
    assert torch.all(hidden[3:6] == 0.25) and not torch.any(hidden[:3] == 0.25)
    assert handle.stats.visual_after == (3,)


def test_vision_placement_visionzip(tiny):
    """VisionZip (CLS attention, keys, contextual merging before the projector); keep-all is exact."""
    model = tiny("llava")
    inputs = make_inputs(model, [[3, Image(), 4], [2, Image(), 1, Image(), 2]], seed=28)
    reference = model(**inputs).logits
    spec = {"apply": {"placement": "vision"}, "scorer": "attention", "selector": "topk"}
    with tokcompress.attach(model, spec, keep=16):
        assert torch.equal(model(**inputs).logits, reference)
    with tokcompress.attach(model, "visionzip", keep=6) as handle:
        tokens, logits = generate_logits(model, inputs, 3, SUPPRESS)
        assert handle.stats.visual_after == (6, 12)  # the vision budget applies per image
        assert handle.stats.placement == "vision"
    with tokcompress.attach(model, spec, keep=6) as handle:  # no merger: the no-cache loop can replay it
        tokens, logits = generate_logits(model, inputs, 3, SUPPRESS)
        handle.freeze()
        ref_tokens, ref_logits = greedy_no_cache(model, inputs, 3, SUPPRESS)
    assert torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(logits, ref_logits, atol=2e-5, rtol=0)


@pytest.mark.parametrize("features", ["hidden", "normed"])
def test_features_are_the_hidden_states_entering_layer_k(tiny, features):
    """The pruner sees layer K's input at the visual positions (through the final norm when 'normed')."""
    from tokcompress.pruner import Pruner
    from tokcompress.selectors.controls import UniformSelector
    from tokcompress.spec import load_spec

    seen = {}

    class Recording(UniformSelector):
        def select(self, tokens, scores, graph, keep):
            seen["features"], seen["text"] = tokens.features.clone(), tokens.text_features.clone()
            return super().select(tokens, scores, graph, keep)

        def requires(self):
            return frozenset({"text_features"})

    pruner = Pruner(load_spec({"apply": {"placement": "layer", "layer": 2, "features": features}, "selector": "uniform"}),
                    selector=Recording())
    model = tiny("llava")
    inputs = make_inputs(model, [[3, Image(), 4]], seed=29)
    decoder = model.model.language_model
    # registered before attach, so it runs before the pruning hook and sees layer 2's full-length input
    hook = decoder.layers[2].register_forward_pre_hook(lambda m, a, kw: seen.update(h=a[0][0].clone()), with_kwargs=True)
    try:
        with tokcompress.attach(model, pruner, keep=3):
            model(**inputs)
    finally:
        hook.remove()
    expect = decoder.norm(seen["h"]) if features == "normed" else seen["h"]
    torch.testing.assert_close(seen["features"][0], expect[3:19].float())  # 3 text, 16 visual, 4 text
    torch.testing.assert_close(seen["text"][0], expect[19:].float())
    with pytest.raises(SpecError, match=r"apply 'layer', field 'features': Input should be 'hidden' or 'normed' \(got 'raw'\)"):
        tokcompress.attach(model, {"extends": "fastv", "apply": {"features": "raw"}}, keep=2)


@pytest.mark.parametrize("spec", ["fastv", "visionzip", "pool"])
def test_a_budget_that_keeps_everything_installs_no_probe_and_says_so(tiny, spec):
    model = tiny("llava")  # 16 visual tokens per image
    inputs = make_inputs(model, [[3, Image(), 4]], seed=31)
    reference = model(**inputs).logits
    with tokcompress.attach(model, spec, keep=64) as handle:
        with pytest.warns(UserWarning, match=r"keep=64 keeps every visual token of 1 of 1 .*\(16 tokens\)"):
            logits = model(**inputs).logits
        assert model.config.text_config._attn_implementation == "sdpa"
        assert model.config.vision_config._attn_implementation == "sdpa"
        assert handle.stats.skipped and handle.stats.visual_after == (16,) and handle.stats.flops_ratio == 1.0
        assert torch.equal(logits, reference)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # said once per handle
            model(**inputs)


def test_frozen_keep_all_runs_the_whole_machinery_and_is_exact(tiny):
    """Keeping every visual token through the gathering, masks and positions changes nothing."""
    model = tiny("gemma3")
    inputs = make_inputs(model, [[3, Image(), 4], [2, Image(), 1, Image(), 2]], seed=32)
    reference = model(**inputs).logits
    everything = [row.nonzero().flatten() for row in inputs["input_ids"] == 999]
    for placement in ("pre_llm", "layer"):
        with tokcompress.attach(model, FASTV[placement], keep=1) as handle:
            handle.freeze(everything)
            assert torch.equal(model(**inputs).logits, reference)
            assert not handle.stats.skipped and handle.stats.visual_after == handle.stats.visual_before

"""`tokcompress.attach` on every family and both placements: exactness, cache consistency, batching, shapes.

Each check compares two ways of computing the same thing (pruned vs unpruned at keep-all, cached
`generate` vs a no-cache loop over the frozen keep set, a padded batch vs the prompts alone), so
a wrong position, mask or cache length anywhere shows up as a logit difference.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch
from hf_support import FASTV, SUPPRESS, UNIFORM, second_image

import tokcompress
from tokcompress.hf.check import generate_logits, greedy_no_cache
from tokcompress.hf.tiny import FAMILIES, Image, make_inputs

PLACEMENTS = ("pre_llm", "layer")
MATRIX = [(f, p) for f in FAMILIES for p in PLACEMENTS]
ATOL = 2e-5


def ragged_batch(model, family, seed=1):
    """Two left-padded prompts with different numbers of images and visual tokens."""
    prompts = [[3, Image(), 5], [2, second_image(family), 1, Image(), 4]]
    return prompts, make_inputs(model, prompts, seed=seed)


KEEP_ALL = [(f, p, FASTV[p]) for f, p in MATRIX] + [(f, "pre_llm", "pool") for f in FAMILIES]


@pytest.mark.parametrize("family, placement, spec", KEEP_ALL,
                         ids=[f"{f}-{p}-{s if isinstance(s, str) else 'fastv'}" for f, p, s in KEEP_ALL])
def test_keep_all_reproduces_unpruned_logits_exactly(tiny, family, placement, spec):
    model = tiny(family)
    _, inputs = ragged_batch(model, family)
    reference = model(**inputs).logits
    with tokcompress.attach(model, spec, keep=10_000) as handle:
        logits = model(**inputs).logits
    assert handle.stats.visual_after == handle.stats.visual_before
    assert torch.equal(logits, reference)


@pytest.mark.parametrize("family, placement", MATRIX)
def test_cached_generate_equals_no_cache_loop_over_same_kept_set(tiny, family, placement):
    model = tiny(family)
    inputs = make_inputs(model, [[4, Image(), 6]], seed=3)
    spec = FASTV[placement]
    if family == "qwen3_vl" and placement == "layer":  # below deepstack depth
        spec = {**spec, "apply": {"placement": "layer", "layer": 1}}
    with tokcompress.attach(model, spec, keep=3) as handle:
        tokens, logits = generate_logits(model, inputs, 5, SUPPRESS)
        handle.freeze()
        ref_tokens, ref_logits = greedy_no_cache(model, inputs, 5, SUPPRESS)
    unpruned = generate_logits(model, inputs, 5, SUPPRESS)[1]
    assert handle.stats.visual_after == (3,)
    assert torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(logits, ref_logits, atol=ATOL, rtol=0)
    assert (logits - unpruned).abs().max() > 100 * ATOL  # pruning changed the outputs: the check has teeth


@pytest.mark.parametrize("family, placement", MATRIX)
def test_left_padded_ragged_batch_equals_single_prompts(tiny, family, placement):
    model = tiny(family)
    prompts, batch = ragged_batch(model, family)
    with tokcompress.attach(model, UNIFORM[placement], keep=3) as handle:
        tokens, logits = generate_logits(model, batch, 4, SUPPRESS)
        assert handle.stats.visual_after == (3, 3)
        assert handle.stats.visual_before[0] < handle.stats.visual_before[1]
        for b, prompt in enumerate(prompts):
            alone = make_inputs(model, [prompt], seed=1 + b)
            t, lg = generate_logits(model, alone, 4, SUPPRESS)
            assert torch.equal(t[0], tokens[b])
            torch.testing.assert_close(lg[0], logits[b], atol=ATOL, rtol=0)


@pytest.mark.parametrize("family, placement", MATRIX)
def test_decoder_processes_text_plus_keep_tokens(tiny, family, placement):
    model = tiny(family)
    inputs = make_inputs(model, [[4, Image(), 6]], seed=2)
    n = inputs["input_ids"].shape[1]
    n_visual = int((inputs["input_ids"] == 999).sum())
    K = 2 if placement == "layer" else 0
    handle = tokcompress.attach(model, UNIFORM[placement], keep=3)
    layers = handle.adapter.layers()
    seen: dict[int, int] = {}

    def record(i, module, args, out):  # a forward hook must return None
        seen[i] = (out if torch.is_tensor(out) else out[0]).shape[1]

    hooks = [layer.register_forward_hook(partial(record, i)) for i, layer in enumerate(layers)]
    try:
        out = model(**inputs, use_cache=True)
    finally:
        for h in hooks:
            h.remove()
        handle.remove()
    expect = [n if i < K else n - n_visual + 3 for i in range(len(layers))]
    assert [seen[i] for i in range(len(layers))] == expect
    assert out.logits.shape[1] == n - n_visual + 3
    cache = out.past_key_values
    assert [cache.layers[i].keys.shape[-2] for i in range(K, len(layers)) if not cache.is_sliding[i]] == \
        [n - n_visual + 3] * sum(not cache.is_sliding[i] for i in range(K, len(layers)))


@pytest.mark.parametrize("family", FAMILIES)
def test_text_only_prompt_is_untouched(tiny, family):
    model = tiny(family)
    inputs = make_inputs(model, [[9]], seed=4)
    reference = generate_logits(model, inputs, 3, SUPPRESS)[1]
    with tokcompress.attach(model, FASTV["layer"], keep=2) as handle:
        logits = generate_logits(model, inputs, 3, SUPPRESS)[1]
    assert handle.stats is None
    assert torch.equal(logits, reference)


@pytest.mark.parametrize("family", ["llava", "gemma3", "qwen2_vl"])
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_decode_reindexes_a_mask_hole_after_the_image(tiny, family, placement):
    """A masked text token after the image: decode masks must follow the kept sequence, not its prefix."""
    model = tiny(family)
    inputs = make_inputs(model, [[3, Image(), 8]], seed=5)
    inputs["attention_mask"][0, -3] = 0
    with tokcompress.attach(model, UNIFORM[placement], keep=4) as handle:
        tokens, logits = generate_logits(model, inputs, 4, SUPPRESS)
        handle.freeze()
        ref_tokens, ref_logits = greedy_no_cache(model, inputs, 4, SUPPRESS)
    assert torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(logits, ref_logits, atol=ATOL, rtol=0)


@pytest.mark.parametrize("family, placement", [("llava", "pre_llm"), ("llava", "layer"), ("gemma3", "layer")])
def test_ragged_rows_without_a_padding_mask(tiny, family, placement):
    """Equal-length rows with different visual counts and no mask: fillers alone pad the kept sequence."""
    model = tiny(family)
    long = [2, Image(), 1, Image(), 4]
    width = make_inputs(model, [long])["input_ids"].shape[1]
    short = make_inputs(model, [[3, Image()]])["input_ids"].shape[1]
    prompts = [[3, Image(), width - short], long]
    batch = make_inputs(model, prompts, seed=6)
    assert bool(batch["attention_mask"].all())
    del batch["attention_mask"]
    with tokcompress.attach(model, UNIFORM[placement], keep=3):
        tokens, logits = generate_logits(model, batch, 3, SUPPRESS)
        for b, prompt in enumerate(prompts):
            alone = make_inputs(model, [prompt], seed=6 + b)
            del alone["attention_mask"]
            torch.testing.assert_close(generate_logits(model, alone, 3, SUPPRESS)[1][0], logits[b], atol=ATOL, rtol=0)


def contiguous(spec: dict, renumber: bool) -> dict:
    """`spec` with ``apply.positions`` contiguous (renumbered) or original."""
    return {**spec, "apply": {**spec["apply"], "positions": "contiguous" if renumber else "original"}}


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "qwen3_vl", "gemma3"])
def test_renumbered_positions_are_consistent(tiny, family, placement):
    model = tiny(family)
    prompts, batch = ragged_batch(model, family)
    reference = model(**batch).logits
    spec = contiguous(UNIFORM[placement], True)
    with tokcompress.attach(model, spec, keep=10_000):
        assert torch.equal(model(**batch).logits, reference)  # nothing dropped: nothing renumbered
    with tokcompress.attach(model, spec, keep=4) as handle:
        tokens, logits = generate_logits(model, batch, 4, SUPPRESS)
        handle.freeze()
        ref_tokens, ref_logits = greedy_no_cache(model, batch, 4, SUPPRESS)
    assert torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(logits, ref_logits, atol=ATOL, rtol=0)


@pytest.mark.parametrize("renumber", [False, True])
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_qwen_decode_positions_continue_at_the_original_length(tiny, placement, renumber):
    """M-RoPE rows at decode: text row n, n+1, ... (n - dropped, ... when renumbering pre-LLM)."""
    model = tiny("qwen2_vl")
    inputs = make_inputs(model, [[3, Image(), 5]], seed=7)
    n = inputs["input_ids"].shape[1]
    seen = []
    with tokcompress.attach(model, contiguous(UNIFORM[placement], renumber), keep=4):
        hook = model.model.language_model.register_forward_pre_hook(
            lambda m, a, kw: seen.append(kw["position_ids"].clone()), with_kwargs=True)
        try:
            generate_logits(model, inputs, 3, SUPPRESS)
        finally:
            hook.remove()
    prefill, decode = seen[0], seen[1:]
    # 16 visual tokens, 4 kept; in-LLM, only layers >= K see renumbered positions (the decoder input keeps its own)
    shift = 12 if renumber and placement == "pre_llm" else 0
    assert prefill.shape[-1] == (n - 12 if placement == "pre_llm" else n)
    for step, pos in enumerate(decode):
        assert pos.shape == (4, 1, 1)
        assert int(pos[0, 0, 0]) == n + step - shift
        assert len(set(pos[1:, 0, 0].tolist())) == 1  # text tokens: t = h = w


def test_stats_report_counts_flops_and_time(tiny):
    model = tiny("llava")
    prompts, batch = ragged_batch(model, "llava")
    with tokcompress.attach(model, "fastv", keep=4) as handle:
        model(**batch)
    s = handle.stats
    assert s.placement == "layer" and s.layer == 2
    assert s.visual_before == (16, 32) and s.visual_after == (4, 4) and s.text == (8, 7)
    est = [tokcompress.flops(model.config, t, v, 4, 2) for t, v in zip(s.text, s.visual_before)]
    assert s.flops_ratio == pytest.approx(sum(e.pruned for e in est) / sum(e.unpruned for e in est))
    assert 0 < s.flops_reduction < 1 and s.select_seconds > 0
    assert s.as_dict()["visual_after"] == [4, 4]


def test_ratio_budget_per_row(tiny):
    model = tiny("llava")
    _, batch = ragged_batch(model, "llava")
    with tokcompress.attach(model, UNIFORM["layer"], ratio=0.25) as handle:
        model(**batch)
    assert handle.stats.visual_after == (4, 8)  # floor(16 * 0.25), floor(32 * 0.25): rows kept apart


@pytest.mark.parametrize("family", ["llava", "gemma3"])
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_manual_decode_loop_without_positions_matches_generate(tiny, family, placement):
    """Prefill, then feed one token at a time with the cache and the original-length mask, no position_ids."""
    model = tiny(family)
    inputs = make_inputs(model, [[3, Image(), 5]], seed=8)
    with tokcompress.attach(model, UNIFORM[placement], keep=3):
        tokens, logits = generate_logits(model, inputs, 3, SUPPRESS)
        out = model(**inputs, use_cache=True)
        mask, cache, step_logits = inputs["attention_mask"], out.past_key_values, [out.logits[:, -1]]
        for t in range(2):
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            out = model(input_ids=tokens[:, t:t + 1], attention_mask=mask, past_key_values=cache, use_cache=True)
            step_logits.append(out.logits[:, -1])
    torch.testing.assert_close(torch.stack(step_logits, dim=1), logits, atol=ATOL, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_d2pruner_and_dart_presets_run_on_every_family(tiny, family):
    """The shipped in-LLM presets get what they read (attention, keys, text keys, features, layouts) everywhere."""
    model = tiny(family)
    _, batch = ragged_batch(model, family)
    for preset, features in (("d2pruner", "hidden"), ("dart", "normed")):
        with tokcompress.attach(model, preset, keep=3) as handle:  # the preset says which features
            assert handle.features == features
            tokens, logits = generate_logits(model, batch, 3, SUPPRESS)
            handle.freeze()
            ref_tokens, ref_logits = greedy_no_cache(model, batch, 3, SUPPRESS)
        assert handle.stats.visual_after == (3, 3)
        assert torch.equal(tokens, ref_tokens)
        torch.testing.assert_close(logits, ref_logits, atol=ATOL, rtol=0)


def test_spec_fields_choose_features_and_positions_and_arguments_override(tiny):
    model = tiny("llava")
    for preset, features, renumber in (("fastv", "hidden", False), ("dart", "normed", False),
                                       ("divprune", "hidden", True)):
        with tokcompress.attach(model, preset, keep=3) as handle:
            assert (handle.features, handle.renumber) == (features, renumber), preset
    with pytest.warns(DeprecationWarning, match=r"apply: \{.*positions: original, features: normed"):
        with tokcompress.attach(model, "divprune", keep=3, renumber_positions=False, features="normed") as handle:
            assert (handle.features, handle.renumber) == ("normed", False)
    with pytest.raises(tokcompress.InputError, match=r"apply.placement 'none': it runs through Pruner.prune"):
        tokcompress.attach(model, "cdpruner", keep=3)  # CLIP embeddings are not part of a VLM forward
    with pytest.raises(tokcompress.SpecError, match=r"needs VisualTokens.image_embeds, which placement 'pre_llm' cannot"):
        tokcompress.attach(model, {"extends": "cdpruner", "apply": {"placement": "pre_llm"}}, keep=3)
    with tokcompress.attach(model, "fastv", keep=3):  # the refused attach left nothing behind
        pass


def test_every_preset_keeping_every_token_is_exact(tiny):
    """keep >= N reproduces the unpruned logits bit for bit for every shipped preset, mergers included."""
    from tokcompress.catalog import get_catalog

    model = tiny("llava")
    inputs = make_inputs(model, [[3, Image(), 4], [2, Image(), 1, Image(), 2]], seed=33)
    reference = model(**inputs).logits
    for name, entry in get_catalog().presets.items():
        spec = tokcompress.load_spec(name)
        if not get_catalog().placements[spec.placement].cls.attachable:
            continue
        with tokcompress.attach(model, name, keep=1000) as handle:
            assert torch.equal(model(**inputs).logits, reference), name
        assert handle.stats.skipped, name

"""Attention-mass compensation (``merger: assign``): exactness, cached decoding, and where the bias lands.

The ``assign`` merger gives every kept visual token a size s (itself plus the dropped tokens folded into
it); the placements add log(s) to every attention logit towards that token in the layers >= K, prefill
and decode. Each test compares two computations that must agree (keep-all against unpruned, cached
`generate` against a no-cache loop over the frozen choice, the mask each layer receives against one
rebuilt here from the frozen assignment), or shows the option is inert when it should be.
"""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from hf_support import SUPPRESS, second_image

import tokcompress
from tokcompress.errors import InputError
from tokcompress.hf.check import generate_logits, greedy_no_cache
from tokcompress.hf.masks import add_key_bias
from tokcompress.hf.tiny import FAMILIES, Image, make_inputs

PLACEMENTS = ("pre_llm", "layer")
MATRIX = [(f, p) for f in FAMILIES for p in PLACEMENTS]
ATOL = 2e-5


def spec(placement: str, family: str = "llava", **merger) -> dict:
    """FastV-like in-LLM pruning (the probe runs) or uniform pre-LLM pruning, with the assign merger."""
    if placement == "layer":
        layer = 1 if family == "qwen3_vl" else 2  # below Qwen3-VL's deepstack depth, as test_attach
        base = {"apply": {"placement": "layer", "layer": layer}, "scorer": "attention", "selector": "topk"}
    else:
        base = {"apply": {"placement": "pre_llm"}, "selector": "uniform"}
    return {**base, "merger": {"name": "assign", **merger}}


def plain(placement: str, family: str = "llava") -> dict:
    """`spec` without the merger: the same pruning, no compensation."""
    return {k: v for k, v in spec(placement, family).items() if k != "merger"}


def ragged(model, family, seed=1):
    return make_inputs(model, [[3, Image(), 5], [2, second_image(family), 1, Image(), 4]], seed=seed)


@pytest.mark.parametrize("family, placement", MATRIX)
def test_keep_all_with_compensation_is_bit_exact(tiny, family, placement):
    """keep >= N: every size is 1, so no bias and no merged values, through the shortcut and through the
    full machinery (a frozen keep-all choice with its identity assignment)."""
    model = tiny(family)
    inputs = ragged(model, family)
    reference = model(**inputs).logits
    with tokcompress.attach(model, spec(placement, family, values="mean"), keep=10_000) as handle:
        assert torch.equal(model(**inputs).logits, reference)
        visual = [row.nonzero().flatten() for row in inputs["input_ids"] == 999]
        handle.freeze(visual, visual)
        assert torch.equal(model(**inputs).logits, reference)
        assert handle.state.pruned.bias is None


@pytest.mark.parametrize("family, placement", MATRIX)
def test_compensation_off_changes_nothing(tiny, family, placement):
    """``bias: none, values: keep`` is the same pruning as no merger at all, bit for bit."""
    model = tiny(family)
    inputs = ragged(model, family)
    with tokcompress.attach(model, plain(placement, family), keep=3):
        bare = model(**inputs).logits
    with tokcompress.attach(model, spec(placement, family, bias="none", values="keep"), keep=3) as handle:
        off = model(**inputs).logits
    assert handle.state.pruned.bias is None
    assert torch.equal(off, bare)


@pytest.mark.parametrize("values", ["keep", "mean"])
@pytest.mark.parametrize("family, placement", MATRIX)
def test_cached_generate_equals_no_cache_loop_with_compensation(tiny, family, placement, values):
    """The bias (and merged values) is carried into cached decoding; freeze replays it from the assignment."""
    model = tiny(family)
    inputs = ragged(model, family, seed=3)
    with tokcompress.attach(model, spec(placement, family, values=values), keep=3) as handle:
        tokens, logits = generate_logits(model, inputs, 4, SUPPRESS)
        assert handle.state.pruned.bias is not None
        chosen, assignment = handle.last_selection, handle.last_assignment
        handle.freeze()
        ref_tokens, ref_logits = greedy_no_cache(model, inputs, 4, SUPPRESS)
        handle.freeze(chosen)  # the same kept tokens without their sizes: the bias must matter
        bare = greedy_no_cache(model, inputs, 4, SUPPRESS)[1]
    assert torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(logits, ref_logits, atol=ATOL, rtol=0)
    assert (logits - bare).abs().max() > 100 * ATOL
    counts = (inputs["input_ids"] == 999).sum(dim=1).tolist()
    assert [len(a) for a in assignment] == counts  # every visual token is assigned ...
    for a, kept in zip(assignment, chosen):  # ... to a kept one; sizes sum to the row's N
        sizes = torch.stack([(a == p).sum() for p in kept])
        assert int(sizes.sum()) == len(a) and bool((sizes >= 1).all())


@pytest.mark.parametrize("family, placement", MATRIX)
def test_cached_generate_without_padding_keeps_the_bias(tiny, family, placement):
    """One row, no attention_mask: SDPA's decode masks are None, so the bias materialises them; that needs
    the layer's KV cache (read as ``cache`` or ``past_key_values``), else each decode step's keys are lost."""
    model = tiny(family)
    inputs = make_inputs(model, [[3, Image(), 5]], seed=3)
    inputs.pop("attention_mask", None)
    with tokcompress.attach(model, spec(placement, family), keep=3) as handle:
        tokens, logits = generate_logits(model, inputs, 4, SUPPRESS)
        assert handle.state.pruned.bias is not None
        chosen = handle.last_selection
        handle.freeze()
        ref_tokens, ref_logits = greedy_no_cache(model, inputs, 4, SUPPRESS)
        handle.freeze(chosen)
        bare = greedy_no_cache(model, inputs, 4, SUPPRESS)[1]
    assert torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(logits, ref_logits, atol=ATOL, rtol=0)
    assert (logits - bare).abs().max() > 100 * ATOL


def expected_key_bias(inputs, chosen, assignment) -> torch.Tensor:
    """[B, M] log-size of each kept visual slot, rebuilt from the frozen choice (fillers first, as `Kept`)."""
    visual = inputs["input_ids"] == 999
    rows = []
    for b in range(visual.shape[0]):
        keep = sorted((~visual[b]).nonzero().flatten().tolist() + chosen[b].tolist())
        rows.append([math.log(int((assignment[b] == p).sum())) if visual[b, p] else 0.0 for p in keep])
    width = max(len(r) for r in rows)
    return torch.tensor([[0.0] * (width - len(r)) + r for r in rows])


def capture_masks(model, handle_layers, inputs, steps):
    """The attention_mask every attention module receives, per forward call: [(layer, mask), ...] per call."""
    seen: list[list] = []
    calls = []

    def on_model(module, args, kwargs):
        calls.append([])

    def on_attn(i, module, args, kwargs):
        calls[-1].append((i, kwargs.get("attention_mask")))

    hooks = [model.register_forward_pre_hook(on_model, with_kwargs=True)]
    hooks += [layer.self_attn.register_forward_pre_hook(partial(on_attn, i), with_kwargs=True)
              for i, layer in enumerate(handle_layers)]
    try:
        generate_logits(model, inputs, steps, SUPPRESS)
    finally:
        for h in hooks:
            h.remove()
    seen.extend(calls)
    return seen


@pytest.mark.parametrize("batch", ["padded", "single"])
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("family", ["llava", "gemma3"])
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_bias_lands_on_exactly_the_kept_visual_keys_in_every_layer_from_K(tiny, family, placement, impl, batch):
    """A probe on every attention module: layers < K get the unbiased mask; layers >= K get it as an additive
    mask plus log(s) at exactly the kept visual keys, in the prefill and at each decode step. Uniform
    selection and assignment by position, so both runs keep the same tokens. A single prompt has no
    padding: SDPA then gets no mask (causal fast path), which the bias must materialise."""
    model = tiny(family, attn_implementation=impl)
    prompts = [[3, Image(), 5], [2, Image(), 1, Image(), 4]]
    inputs = make_inputs(model, prompts if batch == "padded" else prompts[:1], seed=9)
    base = {"apply": {"placement": placement, **({"layer": 2} if placement == "layer" else {})}, "selector": "uniform"}
    K = 2 if placement == "layer" else 0
    runs = {}
    for bias in ("none", "log_size"):
        with tokcompress.attach(model, {**base, "merger": {"name": "assign", "by": "position", "bias": bias}},
                                keep=4) as handle:
            runs[bias] = capture_masks(model, handle.layers, inputs, 3)
            chosen, assignment = handle.last_selection, handle.last_assignment
    key_bias = expected_key_bias(inputs, chosen, assignment)
    # Worked by hand (4x4 grids): row 0 keeps cells (0, 2), (1, 2), (2, 2), (3, 2) of its image, one grid row each
    # (size 4); row 1 keeps 2 per image, cells (1, 0) and (3, 0): rows 0-2 go to (1, 0) (row 2 ties: first), so 12 and 4.
    log4, log12 = math.log(4), math.log(12)
    torch.testing.assert_close(key_bias[0][key_bias[0] > 0], torch.tensor([log4] * 4))
    if batch == "padded":
        torch.testing.assert_close(key_bias[1][key_bias[1] > 0], torch.tensor([log12, log4, log12, log4]))
    assert len(runs["none"]) == len(runs["log_size"]) == 3  # prefill + 2 decode steps
    for call, (plain, biased) in enumerate(zip(runs["none"], runs["log_size"])):
        for (i, m0), (_, m1) in zip(plain, biased):
            if i < K:
                assert (m0 is None and m1 is None) or torch.equal(m0, m1), (call, i)
                continue
            assert m1 is not None and m1.dim() == 4 and m1.is_floating_point(), (call, i)
            low = torch.finfo(m1.dtype).min
            if m0 is None:  # SDPA's causal fast path: every earlier key visible
                q, kv = m1.shape[-2:]
                allowed = torch.ones(q, kv, dtype=torch.bool).tril(kv - q)[None, None]
            else:
                allowed = m0 if m0.dtype == torch.bool else m0 > low / 2
            kv = m1.shape[-1]
            offset = _offset(model, family, i, call, kv, key_bias.shape[1])
            keys = F.pad(key_bias, (0, max(0, offset + kv - key_bias.shape[1])))[:, offset:offset + kv]
            expect = torch.where(allowed, keys[:, None, None, :].to(m1.dtype), torch.tensor(low, dtype=m1.dtype))
            assert torch.equal(m1, expect.expand_as(m1)), (call, i)


def _offset(model, family, layer, call, kv, m):
    """Key 0's position in layer `layer`'s cache: 0, except Gemma3's sliding layers once the window is full."""
    if family != "gemma3" or call == 0:
        return 0
    cfg = model.config.text_config
    if cfg.layer_types[layer] != "sliding_attention":
        return 0
    cached = m + call - 1  # kept prompt + the tokens decoded before this step
    return max(cached - cfg.sliding_window + 1, 0)


def test_proportional_attention_equals_attention_over_the_duplicates():
    """Hand-worked identity behind the bias: a key/value seen s times weighs like one key with log(s) added."""
    torch.manual_seed(0)
    q = torch.randn(1, 2, 3, 8)
    k = torch.randn(1, 2, 4, 8)
    v = torch.randn(1, 2, 4, 8)
    sizes = torch.tensor([1, 3, 2, 1])
    dup = torch.repeat_interleave(torch.arange(4), sizes)  # keys 0, 1, 1, 1, 2, 2, 3
    full = F.scaled_dot_product_attention(q, k[:, :, dup], v[:, :, dup])
    mask = torch.ones(1, 1, 3, 4, dtype=torch.bool)
    bias = add_key_bias(mask, sizes.float().log()[None], 0, torch.float32)
    torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v, attn_mask=bias), full)
    # a masked key stays masked whatever its size; keys past the bias get 0
    mask[..., 1] = False
    out = add_key_bias(mask, torch.tensor([[0.0, 5.0]]), 0, torch.float32)
    assert out[0, 0, 0].tolist() == [0.0, torch.finfo(torch.float32).min, 0.0, 0.0]
    assert add_key_bias(torch.ones(1, 1, 1, 3, dtype=torch.bool), torch.tensor([[1.0, 2.0, 3.0]]), 1,
                        torch.float32)[0, 0, 0].tolist() == [2.0, 3.0, 0.0]


def test_flash_attention_is_refused_when_a_bias_is_needed(tiny, monkeypatch):
    model = tiny("llava")
    text = model.model.language_model.config
    monkeypatch.setattr(type(text), "_attn_implementation", property(lambda self: "flash_attention_2"), raising=False)
    with pytest.raises(InputError, match=r"attn_implementation is 'flash_attention_2', expected one of \['sdpa', 'eager'\]"):
        tokcompress.attach(model, spec("pre_llm"), keep=3)
    with tokcompress.attach(model, spec("pre_llm", bias="none"), keep=3):  # no bias: flash is fine
        pass


def test_freeze_checks_the_assignment(tiny):
    model = tiny("llava")
    inputs = make_inputs(model, [[3, Image(), 4]], seed=5)
    with tokcompress.attach(model, spec("pre_llm"), keep=3) as handle:
        model(**inputs)
        chosen, assignment = handle.last_selection, handle.last_assignment
        bad = assignment[0].clone()
        bad[bad == chosen[0][0]] = int(chosen[0][0]) + 100
        with pytest.raises(InputError, match=r"assignment row 0 points at position \d+, which row 0 of the selection"):
            handle.freeze(chosen, [bad])
        handle.freeze(chosen, [assignment[0][:-1]])
        with pytest.raises(InputError, match=r"frozen assignment row 0 has 15 entries but the row holds 16 image tokens"):
            model(**inputs)
    with tokcompress.attach(model, plain("pre_llm"), keep=3) as handle:
        model(**inputs)
        assert handle.last_assignment is None
        with pytest.raises(InputError, match=r"has no merger that assigns tokens"):
            handle.freeze(handle.last_selection, [assignment[0]])

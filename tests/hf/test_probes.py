"""The attention probe: last-token (or CLS) attention without eager attention equals eager's weights."""

from __future__ import annotations

import pytest
import torch
from hf_support import second_image

import tokcompress
from tokcompress.hf.probes import row_attention
from tokcompress.hf.tiny import Image, make_inputs


def _eager_weights(model, inputs, layer):
    """Attention weights [B, H, N, N] of decoder layer `layer` from an eager-attention twin of `model`."""
    eager = build_tiny_model_like(model)
    captured = {}

    def hook(module, args, out):
        captured["w"] = out[1]

    h = eager.model.language_model.layers[layer].self_attn.register_forward_hook(hook)
    try:
        eager(**inputs)
    finally:
        h.remove()
    return captured["w"]


def build_tiny_model_like(model):
    import copy

    twin = copy.deepcopy(model)
    twin.set_attn_implementation("eager")
    return twin


def test_row_attention_by_hand():
    q = torch.zeros(1, 2, 2, 2)
    q[0, :, -1] = torch.tensor([1.0, 0.0])
    k = torch.tensor([[[[2.0, 0.0], [0.0, 0.0], [1.0, 5.0]]]])  # one KV head shared by both query heads
    att = row_attention(q, k, None, scaling=1.0)
    logits = torch.tensor([2.0, 0.0, 1.0])
    torch.testing.assert_close(att[0], torch.softmax(logits, 0))
    mask = torch.tensor([True, False, True]).view(1, 1, 1, 3).expand(1, 1, 2, 3)
    torch.testing.assert_close(row_attention(q, k, mask, 1.0)[0], torch.softmax(torch.tensor([2.0, -1e9, 1.0]), 0))
    additive = torch.where(mask, 0.0, torch.finfo(torch.float32).min)
    torch.testing.assert_close(row_attention(q, k, additive, 1.0), row_attention(q, k, mask, 1.0))
    windowed = row_attention(q, k, None, 1.0, sliding_window=2)[0]
    torch.testing.assert_close(windowed, torch.softmax(torch.tensor([-1e9, 0.0, 1.0]), 0))


@pytest.mark.parametrize("family, layer", [("llava", 2), ("qwen2_vl", 2), ("gemma3", 2), ("gemma3", 4)])
def test_probe_equals_eager_last_row_on_a_padded_batch(tiny, family, layer):
    """Gemma3 K=2 probes a sliding-window layer, K=4 the full-attention one."""
    model = tiny(family, text_layers=4) if layer < 4 else tiny(family, text_layers=8)
    inputs = make_inputs(model, [[3, Image(), 9], [2, second_image(family), 1, Image(), 4]], seed=11)
    spec = {"apply": {"placement": "layer", "layer": layer}, "scorer": "attention", "selector": "topk"}
    with tokcompress.attach(model, spec, keep=3) as handle:
        model(**inputs)
        probed = handle.strategy.probe.attention.clone()
    weights = _eager_weights(model, inputs, layer - 1)  # [B, H, N, N]
    expect = weights[:, :, -1, :].float().mean(dim=1)
    torch.testing.assert_close(probed, expect, atol=1e-6, rtol=1e-5)
    assert model.config.text_config._attn_implementation == "sdpa"  # only switched while attached


def test_vision_probe_equals_eager_cls_row(tiny):
    model = tiny("llava")
    inputs = make_inputs(model, [[2, Image(), 3], [1, Image(), 4]], seed=12)
    spec = {"apply": {"placement": "vision"}, "scorer": "attention", "selector": "topk"}
    with tokcompress.attach(model, spec, keep=4) as handle:
        model(**inputs)
        probed = handle.strategy.probe.attention.clone()
    twin = build_tiny_model_like(model)
    captured = {}
    h = twin.model.vision_tower.encoder.layers[-2].self_attn.register_forward_hook(
        lambda m, a, out: captured.update(w=out[1]) or None)
    try:
        twin(**inputs)
    finally:
        h.remove()
    torch.testing.assert_close(probed, captured["w"][:, :, 0, :].mean(dim=1), atol=1e-6, rtol=1e-5)

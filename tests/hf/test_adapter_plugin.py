"""The adapter example of docs/transformers.md, installed as a third-party plugin, prunes a VipLLaVA."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import tokcompress
from tokcompress.errors import InputError, PluginError
from tokcompress.hf.adapters import find_adapter, registered_adapters
from tokcompress.hf.tiny import IMAGE_ID, _text

DOC = Path(__file__).resolve().parents[2] / "docs" / "transformers.md"


def _vipllava():
    import transformers as tf

    vision = tf.CLIPVisionConfig(image_size=56, patch_size=14, num_hidden_layers=2, hidden_size=32,
                                 intermediate_size=64, num_attention_heads=4)
    config = tf.VipLlavaConfig(vision_config=vision, text_config=tf.LlamaConfig(**_text()), image_token_index=IMAGE_ID,
                               vision_feature_layers=[-2, -1], image_seq_length=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return tf.VipLlavaForConditionalGeneration._from_config(config, attn_implementation="sdpa").eval()


def test_documented_adapter_plugin(install_plugin):
    model = _vipllava()
    with pytest.raises(InputError, match="does not support VipLlavaForConditionalGeneration"):
        find_adapter(model)
    source = re.search(r"```python\n(from tokcompress.hookspecs.*?)```", DOC.read_text(), re.S).group(1)
    install_plugin("vipllava-adapter", "vipllava_adapter", source)
    assert find_adapter(model).family == "vipllava"
    inputs = {"input_ids": torch.tensor([[5, 6] + [IMAGE_ID] * 16 + [7, 8, 9]]), "pixel_values": torch.randn(1, 3, 56, 56)}
    reference = model(**inputs).logits
    with tokcompress.attach(model, "fastv", keep=100):
        assert torch.equal(model(**inputs).logits, reference)
    with tokcompress.attach(model, "fastv", keep=4) as handle:
        assert model(**inputs).logits.shape[1] == 5 + 4
    assert handle.stats.visual_after == (4,)


def test_duplicate_adapter_family_is_refused(install_plugin):
    install_plugin("dup-adapter", "dup_adapter", """
        from tokcompress.hookspecs import hookimpl
        from tokcompress.hf.adapters.llava import LlavaAdapter

        class Again(LlavaAdapter):
            pass

        @hookimpl
        def tokcompress_register_model_adapters():
            return [Again]
    """)
    with pytest.raises(PluginError, match="duplicate model adapter family 'llava'"):
        registered_adapters()

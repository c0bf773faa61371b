"""Tiny model builders: every family's inputs match what its model expects, deterministically."""

from __future__ import annotations

import pytest
import torch

from tokcompress.errors import InputError
from tokcompress.hf.tiny import FAMILIES, IMAGE_ID, Image, family_of, image_token_count, make_inputs, tiny_config


@pytest.mark.parametrize("family", FAMILIES)
def test_image_tokens_match_the_features_the_model_computes(tiny, family):
    model = tiny(family)
    from hf_support import second_image

    inputs = make_inputs(model, [[2, Image(), 3, second_image(family), 1]], seed=31)
    pixel_args = {k: v for k, v in inputs.items() if k in ("pixel_values", "image_sizes", "image_grid_thw")}
    pooled = model.model.get_image_features(**pixel_args).pooler_output
    n_features = sum(p.shape[0] for p in pooled) if isinstance(pooled, (list, tuple)) else pooled.shape[0] * pooled.shape[1]
    assert int((inputs["input_ids"] == IMAGE_ID).sum()) == n_features
    cfg = model.config
    assert n_features == image_token_count(family, cfg, Image()) + image_token_count(family, cfg, second_image(family))
    assert family_of(model) == family


def test_batch_rows_equal_prompts_alone_and_seeds_repeat(tiny):
    model = tiny("qwen2_vl")
    prompts = [[3, Image(), 2], [1, Image(56, 112), 4]]
    batch = make_inputs(model, prompts, seed=5)
    alone = make_inputs(model, [prompts[1]], seed=6)
    real = batch["attention_mask"][1].bool()
    assert torch.equal(batch["input_ids"][1][real], alone["input_ids"][0])
    assert torch.equal(batch["pixel_values"][16 * 4:], alone["pixel_values"])  # second image's patches
    assert torch.equal(make_inputs(model, prompts, seed=5)["pixel_values"], batch["pixel_values"])
    assert batch["attention_mask"][1].tolist()[:8] == [0] * 8 and bool(batch["attention_mask"][0].all())  # left padding


def test_bad_requests_name_the_problem(tiny):
    with pytest.raises(InputError, match="unknown model family 'llama'"):
        tiny_config("llama")
    model = tiny("qwen2_vl")
    with pytest.raises(InputError, match="multiple of 28"):
        make_inputs(model, [[2, Image(50, 56)]])
    with pytest.raises(InputError, match="segment"):
        make_inputs(model, [[2, "picture"]])
    with pytest.raises(InputError, match="padding"):
        make_inputs(model, [[2]], padding="middle")

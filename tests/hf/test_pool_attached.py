"""The `pool` preset through `attach` (pre-LLM): the decoder sees each cell's mean at its centre token."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hf_support import second_image

import tokcompress
from tokcompress.hf.tiny import FAMILIES, Image, make_inputs


def layer0_inputs(model, inputs, spec=None, keep=None):
    """Hidden states entering decoder layer 0 (the decoder's input embeddings), with `spec` attached if given."""
    seen = {}
    layer = model.model.language_model.layers[0]
    hook = layer.register_forward_pre_hook(lambda m, a, kw: seen.update(h=a[0].clone()), with_kwargs=True)
    try:
        if spec is None:
            model(**inputs)
            return seen["h"][0], None
        with tokcompress.attach(model, spec, keep=keep) as handle:
            model(**inputs)
        return seen["h"][0], handle
    finally:
        hook.remove()


def test_pre_llm_pool_replaces_the_image_by_its_2x2_average_pooling(tiny):
    model = tiny("llava")  # one image = a 4x4 grid of 16 visual tokens
    inputs = make_inputs(model, [[3, Image(), 4]], seed=41)
    full, _ = layer0_inputs(model, inputs)
    pruned, handle = layer0_inputs(model, inputs, "pool", keep=4)
    # keep 4 of 4x4: 2 bands of 2 cells, each cell a 2x2 block; centres (0, 0) (0, 2) (2, 0) (2, 2)
    assert handle.stats.visual_after == (4,) and handle.stats.placement == "pre_llm"
    assert handle.last_selection[0].tolist() == [3 + 0, 3 + 2, 3 + 8, 3 + 10]
    image = full[3:19].T.reshape(-1, 4, 4)  # [D, 4, 4]
    expect = F.avg_pool2d(image, 2).reshape(-1, 4).T  # [4, D], raster order
    assert pruned.shape[0] == 3 + 4 + 4
    torch.testing.assert_close(pruned[3:7], expect.to(pruned.dtype))
    assert torch.equal(pruned[:3], full[:3]) and torch.equal(pruned[7:], full[19:])


@pytest.mark.parametrize("family", FAMILIES)
def test_pool_runs_on_every_family_and_keeps_the_budget(tiny, family):
    model = tiny(family)
    inputs = make_inputs(model, [[3, Image(), 5], [2, second_image(family), 1, Image(), 4]], seed=1)
    reference = model(**inputs).logits
    with tokcompress.attach(model, "pool", keep=4) as handle:
        logits = model(**inputs).logits
    assert handle.stats.visual_after == (4, 4)
    assert all(len(set(row.tolist())) == 4 for row in handle.last_selection)
    assert bool(torch.isfinite(logits).all())
    assert logits.shape[-1] == reference.shape[-1]

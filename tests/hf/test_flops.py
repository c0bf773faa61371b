"""tokcompress.flops: FastV's per-layer formula, hand-computed."""

from __future__ import annotations

import pytest

import tokcompress
from tokcompress.errors import InputError
from tokcompress.flops import FASTV_FORMULA, SWIGLU_FORMULA, layer_flops

CFG = {"hidden_size": 4, "intermediate_size": 8, "num_hidden_layers": 3}


def test_layer_formula_by_hand():
    # n=2, d=4, m=8: 4*2*16 + 2*4*4 + 2*2*4*8 = 128 + 32 + 128
    assert layer_flops(2, 4, 8) == 288
    assert layer_flops(2, 4, 8, mlp="swiglu") == 288 + 2 * 4 * 8


def test_pruned_layers_use_text_plus_keep():
    est = tokcompress.flops(CFG, n_text=1, n_visual=3, keep=1, layer=1)
    # layer 0 over 4 tokens, layers 1-2 over 2 tokens
    assert est.unpruned == 3 * layer_flops(4, 4, 8)
    assert est.pruned == layer_flops(4, 4, 8) + 2 * layer_flops(2, 4, 8)
    assert est.ratio == pytest.approx(est.pruned / est.unpruned)
    assert est.reduction == pytest.approx(1 - est.ratio)
    assert est.speedup == pytest.approx(1 / est.ratio)
    assert est.formula == FASTV_FORMULA == "4nd^2 + 2n^2d + 2ndm"
    assert tokcompress.flops(CFG, 1, 3, 1, 0, mlp="swiglu").formula == SWIGLU_FORMULA


def test_keep_all_and_pre_llm():
    assert tokcompress.flops(CFG, 5, 7, 7, 2).ratio == 1.0
    est = tokcompress.flops(CFG, 5, 7, 1, 0)
    assert est.pruned == 3 * layer_flops(6, 4, 8)


def test_reads_the_text_config_of_a_vlm_config():
    from tokcompress.hf.tiny import tiny_config

    cfg = tiny_config("llava", text_layers=4, text_hidden=64)
    est = tokcompress.flops(cfg, 10, 16, 4, 2)
    assert est.unpruned == 4 * layer_flops(26, 64, 128)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"keep": 9}, "keep"),
        ({"layer": 3}, "layer must be in"),
        ({"n_text": -1}, "n_text"),
        ({"mlp": "geglu"}, "mlp"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, match):
    args = {"n_text": 2, "n_visual": 8, "keep": 4, "layer": 1} | kwargs
    with pytest.raises(InputError, match=match):
        tokcompress.flops(CFG, **args)


def test_bad_config_names_the_key():
    with pytest.raises(InputError, match="intermediate_size"):
        tokcompress.flops({"hidden_size": 4, "num_hidden_layers": 2}, 1, 1, 1, 0)

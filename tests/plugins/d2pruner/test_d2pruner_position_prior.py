"""Debiaser `position_prior`: modes, placement on layouts (exact, resampled, per tile, newlines), errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokcompress import Grid, InputError, Layout, OffGrid, SpecError, VisualTokens, build_pruner
from tokcompress_d2pruner.position_prior import PositionPriorDebiaser, PositionPriorParams
from tokcompress_d2pruner.profiles import ProfileError, load_profile, resample_map, save_profile

META = {"description": "t", "analytic": True, "model": "m", "layer": 1, "pruning_layer": 2,
        "num_images": None, "prompt": None, "seed": None}


def _debiaser(**params) -> PositionPriorDebiaser:
    return PositionPriorDebiaser(PositionPriorParams(**params))


def _tokens(n: int, layout=None, batch: int = 1, attention=None, mask=None) -> VisualTokens:
    g = torch.Generator().manual_seed(n)
    att = torch.rand(batch, n, generator=g) if attention is None else attention
    return VisualTokens(torch.randn(batch, n, 8, generator=g), attention=att, layout=layout, mask=mask)


def test_ratio_on_the_exact_grid_divides_by_the_stored_map():
    tokens = _tokens(576, Layout.grid(24))
    prior = load_profile("llava-1.5-analytic").maps["image"].flatten()
    out = _debiaser().debias(tokens.attention, tokens)
    assert torch.allclose(out, tokens.attention / (prior + 1e-7))
    # Without a layout, a row of exactly 24*24 tokens is that grid.
    bare = _tokens(576)
    assert torch.equal(_debiaser().debias(bare.attention, bare), bare.attention / (prior + 1e-7))


def test_other_grid_sizes_use_the_bilinearly_resampled_map():
    tokens = _tokens(12 * 30, Layout.grid(12, 30))
    prior = resample_map(load_profile("llava-1.5-analytic").maps["image"], 12, 30).flatten()
    assert torch.allclose(_debiaser().debias(tokens.attention, tokens), tokens.attention / (prior + 1e-7))


def test_multi_view_layouts_place_one_map_per_tile_and_thumbnail():
    prof = load_profile("internvl2.5-analytic")
    layout = Layout((Grid(4, 4, "tile"), Grid(4, 4, "tile"), Grid(2, 3, "thumbnail")))
    deb = _debiaser(profile="internvl2.5-analytic")
    tile = resample_map(prof.maps["tile"], 4, 4).flatten()
    thumb = resample_map(prof.maps["thumbnail"], 2, 3).flatten()
    assert torch.allclose(deb.bias_for_layout(layout), torch.cat([tile, tile, thumb]))


def test_newlines_and_offgrid_tokens_get_the_grid_mean_or_the_profile_vector(tmp_path):
    image = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    layout = Layout((Grid(2, 3, newline=True), OffGrid(2)))  # 2 rows of 3 + newline, then 2 separators
    plain = load_profile(save_profile(tmp_path / "plain", {"image": image}, META))
    deb = _debiaser(profile=str(plain.path))
    assert deb.bias_for_layout(layout).tolist() == [1, 2, 3, 3.5, 4, 5, 6, 3.5, 3.5, 3.5]
    with_vec = save_profile(tmp_path / "vec", {"image": image, "offgrid": torch.tensor([7.0, 9.0])}, META)
    deb = _debiaser(profile=str(with_vec))
    assert deb.bias_for_layout(layout).tolist() == [1, 2, 3, 7, 4, 5, 6, 9, 7, 9]
    strict = _debiaser(profile=str(plain.path), offgrid="error")
    with pytest.raises(InputError, match=r"no 1-D entry 'offgrid' for the 2 off-grid tokens"):
        strict.bias_for_layout(layout)


def test_kind_map_reuses_a_map_and_a_missing_kind_is_an_explicit_error():
    layout = Layout((Grid(24, 24, "base"), Grid(12, 12, "crop", newline=True)))
    with pytest.raises(InputError, match=r"on layout base 24x24 .*no 2-D map for grid kind 'base' \(has: image\).*kind_map: \{base: "):
        _debiaser().bias_for_layout(layout)
    deb = _debiaser(kind_map={"base": "image", "crop": "image"})
    bias = deb.bias_for_layout(layout)
    assert bias.shape == (layout.num_tokens,)
    assert torch.equal(bias[:576], load_profile("llava-1.5-analytic").maps["image"].flatten())


def test_no_sensible_mapping_is_refused():
    with pytest.raises(InputError, match=r"needs VisualTokens.layout .* row of 100 tokens"):
        t = _tokens(100)
        _debiaser().debias(t.attention, t)
    with pytest.raises(InputError, match="has no grid"):
        _debiaser().bias_for_layout(Layout((OffGrid(5),)))
    with pytest.raises(InputError, match="needs VisualTokens.layout"):  # several maps: no layout-free guess
        t = _tokens(256)
        _debiaser(profile="internvl2.5-analytic").debias(t.attention, t)
    with pytest.raises(InputError, match="non-negative scores"):
        t = _tokens(576, Layout.grid(24), attention=-torch.rand(1, 576))
        _debiaser().debias(t.attention, t)


def test_bad_profile_and_params_fail_when_the_pruner_is_built():
    with pytest.raises(ProfileError, match=r"field 'profile'.*unknown positional-bias profile"):
        build_pruner({"scorer": "attention", "debiaser": {"name": "position_prior", "profile": "nope"}, "selector": "topk"})
    with pytest.raises(SpecError, match="mode"):
        build_pruner({"scorer": "attention", "debiaser": {"name": "position_prior", "mode": "divide"}, "selector": "topk"})
    with pytest.raises(SpecError, match="eps"):
        build_pruner({"scorer": "attention", "debiaser": {"name": "position_prior", "eps": 0}, "selector": "topk"})


def test_subtract_mode_compares_unit_sum_distributions():
    tokens = _tokens(576, Layout.grid(24))
    prior = load_profile("llava-1.5-analytic").maps["image"].flatten()
    a = tokens.attention
    out = _debiaser(mode="subtract").debias(a, tokens)
    assert torch.allclose(out, a / a.sum() - prior / prior.sum(), atol=1e-7)
    raw = _debiaser(mode="subtract", subtract_normalize=False).debias(a, tokens)
    assert torch.allclose(raw, a - prior)


def test_ragged_batch_places_each_rows_layout_on_its_valid_tokens():
    mask = torch.tensor([[True] * 16 + [False] * 5, [False] + [True] * 20])
    layouts = [Layout.grid(4, 4), Layout.grid(4, 5)]
    tokens = _tokens(21, layouts, batch=2, mask=mask)
    deb = _debiaser()
    bias = deb.bias(tokens)
    assert torch.equal(bias[0, :16], deb.bias_for_layout(layouts[0]))
    assert torch.equal(bias[1, mask[1]], deb.bias_for_layout(layouts[1]))
    assert bias[0, 16:].tolist() == [1.0] * 5 and bias[1, 0].item() == 1.0


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 12), cols=st.integers(1, 12), scale=st.floats(0.1, 1e3),  # eps (1e-7) stays negligible next to the prior
    seed=st.integers(0, 2**16),
)
def test_ratio_ranking_ignores_the_profiles_scale(tmp_path_factory, rows, cols, scale, seed):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(5, 7, generator=g) + 0.05
    d = tmp_path_factory.mktemp("p")
    one = _debiaser(profile=str(save_profile(d / "one", {"image": base}, META)))
    big = _debiaser(profile=str(save_profile(d / "big", {"image": base * scale}, META)))
    tokens = _tokens(rows * cols, Layout.grid(rows, cols), attention=torch.rand(1, rows * cols, generator=g))
    a = one.debias(tokens.attention, tokens)
    b = big.debias(tokens.attention, tokens)
    assert torch.allclose(a, b * scale, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_scores_are_debiased_in_fp32(dtype):
    tokens = _tokens(576, Layout.grid(24))
    out = _debiaser().debias(tokens.attention.to(dtype), tokens)
    assert out.dtype == torch.float32
    prior = load_profile("llava-1.5-analytic").maps["image"].flatten()
    assert torch.allclose(out, tokens.attention.to(dtype).float() / (prior + 1e-7))


def test_placed_priors_are_cached_with_a_bound():
    import tokcompress_d2pruner.position_prior as module

    deb = _debiaser()
    layouts = [Layout.grid(r, c) for r in range(1, 20) for c in range(1, 16)]  # 285 grid sizes
    first = deb.bias_for_layout(layouts[0]).clone()
    for lay in layouts:
        deb.bias_for_layout(lay)
    assert len(deb._bias_cache) == module._CACHE_SIZE and layouts[0] not in deb._bias_cache
    assert len(deb.profile._cache) <= 256
    assert torch.equal(deb.bias_for_layout(layouts[0]), first)  # recomputed identically

"""Profile I/O (safetensors + JSON), resampling, validation errors, and the shipped analytic profiles."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tokcompress.catalog import get_catalog
from tokcompress.layout import Grid
from tokcompress_d2pruner.analytic_profiles import ANALYTIC_PROFILES, build_maps
from tokcompress_d2pruner.profiles import (
    FORMAT,
    METADATA_KEYS,
    ProfileError,
    load_profile,
    resample_map,
    save_profile,
)

META = {
    "description": "test profile",
    "analytic": False,
    "model": "test/model",
    "layer": 1,
    "pruning_layer": 2,
    "num_images": 3,
    "prompt": "Describe the image.",
    "seed": 42,
}


def _maps():
    return {"image": torch.rand(3, 4) + 0.1, "crop": torch.rand(2, 2), "offgrid": torch.tensor([0.5, 1.0, 2.0])}


def test_round_trip_keeps_maps_and_metadata(tmp_path):
    maps = _maps()
    path = save_profile(tmp_path / "my-model-1.5", maps, META)
    assert path.name == "my-model-1.5.safetensors"  # a dot in the name is not taken for a suffix
    assert (tmp_path / "my-model-1.5.json").is_file()
    for source in (path, tmp_path / "my-model-1.5", str(tmp_path / "my-model-1.5.json")):
        prof = load_profile(source)
        assert set(prof.maps) == set(maps)
        for k in maps:
            assert torch.equal(prof.maps[k], maps[k].float())
        for k, v in META.items():
            assert prof.metadata[k] == v
        assert prof.metadata["format"] == FORMAT
        assert prof.metadata["grids"] == {"image": [3, 4], "crop": [2, 2]}
        assert prof.name == "my-model-1.5"
        assert set(METADATA_KEYS) <= set(prof.metadata)
    on_disk = json.loads((tmp_path / "my-model-1.5.json").read_text())
    assert on_disk["name"] == "my-model-1.5" and on_disk["tokcompress_version"]


def test_map_for_exact_size_is_the_stored_map_and_other_sizes_are_bilinear(tmp_path):
    base = torch.rand(6, 8)
    prof = load_profile(save_profile(tmp_path / "p", {"image": base}, META))
    assert torch.equal(prof.map_for(Grid(6, 8)), base)
    up = prof.map_for(Grid(12, 20))
    assert torch.allclose(up, F.interpolate(base[None, None], size=(12, 20), mode="bilinear", align_corners=False)[0, 0], atol=1e-6)
    down = prof.map_for(Grid(3, 4))
    assert torch.allclose(down, F.interpolate(base[None, None], size=(3, 4), mode="bilinear", antialias=True)[0, 0])
    assert torch.equal(prof.map_for(Grid(2, 2, kind="crop"), kind="image"), prof.map_for(Grid(2, 2)))


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 9), w=st.integers(1, 9), rows=st.integers(1, 30), cols=st.integers(1, 30),
    value=st.floats(1e-6, 10.0),
)
def test_resampling_preserves_constants_and_bounds(h, w, rows, cols, value):
    const = torch.full((h, w), value)
    assert torch.allclose(resample_map(const, rows, cols), torch.full((rows, cols), value), rtol=1e-5)
    m = torch.rand(h, w, generator=torch.Generator().manual_seed(h * 31 + w))
    r = resample_map(m, rows, cols)
    assert r.shape == (rows, cols)
    assert float(r.min()) >= float(m.min()) - 1e-6 and float(r.max()) <= float(m.max()) + 1e-6


def test_shrinking_is_antialiased_not_point_sampled():
    # Rows 1,0,0 repeated: plain bilinear at a 3x shrink samples only the 0 rows; the antialiased
    # (triangle) filter sees every row and gives the pattern's mean 1/3 away from the border.
    stripes = torch.tensor([1.0, 0.0, 0.0]).repeat(4).view(12, 1).expand(12, 3)
    assert float(F.interpolate(stripes[None, None], size=(4, 3), mode="bilinear")[0, 0].max()) == 0.0
    shrunk = resample_map(stripes, 4, 3)
    assert torch.allclose(shrunk[1:-1], torch.full((2, 3), 1 / 3))
    assert float(shrunk.min()) > 0.2


def test_resampling_keeps_a_bottom_heavy_shape():
    prof = load_profile("llava-1.5-analytic")
    for rows, cols in ((7, 7), (12, 30), (48, 48)):
        row_means = prof.map_for(Grid(rows, cols)).mean(dim=1)
        assert bool((row_means[1:] >= row_means[:-1]).all()), (rows, cols)


def test_missing_kind_names_the_available_kinds():
    prof = load_profile("internvl2.5-analytic")
    with pytest.raises(ProfileError, match=r"no 2-D map for grid kind 'image' \(has: thumbnail, tile\)"):
        prof.map_for(Grid(4, 4))


@pytest.mark.parametrize(
    "maps, meta, message",
    [
        ({"image": -torch.ones(2, 2)}, {}, "non-negative"),
        ({"image": torch.tensor([[1.0, float("nan")]])}, {}, "finite"),
        ({"image": torch.ones(2, 2, 2)}, {}, r"shape \(2, 2, 2\)"),
        ({"offgrid": torch.ones(3)}, {}, "at least one 2-D grid map"),
        ({"image": torch.ones(2, 2), "offgrid": torch.ones(2, 2)}, {}, "'offgrid' has shape"),
        ({"image": torch.ones(2, 2)}, {"grids": {"image": [3, 3]}}, "'grids'"),
        ({"image": torch.ones(2, 2)}, {"format": "other/2"}, "'format'"),
        ({"image": torch.ones(2, 2)}, {"analytic": "yes"}, "'analytic'"),
        ({"image": torch.ones(2, 2)}, {"layer": -1}, "'layer'"),
        ({"image": torch.ones(2, 2)}, {"prompt": {1, 2}}, "plain JSON"),
    ],
)
def test_save_refuses_bad_profiles(tmp_path, maps, meta, message):
    with pytest.raises(ProfileError, match=message):
        save_profile(tmp_path / "bad", maps, {**META, **meta})
    assert not (tmp_path / "bad.safetensors").exists()


def test_save_requires_every_metadata_key(tmp_path):
    meta = dict(META)
    del meta["seed"]
    with pytest.raises(ProfileError, match=r"lacks \['seed'\]"):
        save_profile(tmp_path / "p", {"image": torch.ones(2, 2)}, meta)


def test_load_errors_name_the_file(tmp_path):
    save_profile(tmp_path / "p", {"image": torch.ones(2, 2)}, META)
    (tmp_path / "p.json").unlink()
    with pytest.raises(ProfileError, match=r"p\.json does not exist"):
        load_profile(tmp_path / "p")
    (tmp_path / "q.safetensors").write_bytes(b"not a safetensors file")
    (tmp_path / "q.json").write_text("{}")
    with pytest.raises(ProfileError, match="cannot read .*q.safetensors as safetensors"):
        load_profile(tmp_path / "q")
    save_profile(tmp_path / "r", {"image": torch.ones(2, 2)}, META)
    (tmp_path / "r.json").write_text("{not json")
    with pytest.raises(ProfileError, match=r"profile metadata .*r\.json is not valid JSON: line 1, column 2"):
        load_profile(tmp_path / "r")
    with pytest.raises(ProfileError, match=r"unknown positional-bias profile .*'llava-analytic'.*Did you mean 'llava-1.5-analytic'"):
        load_profile("llava-analytic")


@pytest.mark.parametrize("name", sorted(ANALYTIC_PROFILES))
def test_shipped_profiles_are_registered_labelled_and_reproducible(name):
    assert name in get_catalog().profiles
    prof = load_profile(name)
    assert prof.analytic is True and prof.metadata["analytic"] is True
    assert prof.metadata["description"].startswith("ANALYTIC, NOT MEASURED")
    assert prof.metadata["num_images"] is None and prof.metadata["pruning_layer"] == 2
    expected = build_maps(name)
    assert set(prof.maps) == set(expected)
    for kind, m in expected.items():
        assert torch.equal(prof.maps[kind], m), "shipped file differs from analytic_profiles.py: regenerate"


def test_shipped_shapes_are_bottom_heavy_and_periphery_heavy():
    llava = load_profile("llava-1.5-analytic").maps["image"]
    assert llava.shape == (24, 24)
    assert float(llava[-1].mean()) > 4 * float(llava[0].mean())
    assert float(llava[:12].max() / llava[:12].min()) < 1.5  # the top half is nearly flat
    for name, kind in (("internvl2.5-analytic", "tile"), ("internvl2.5-analytic", "thumbnail"), ("qwen2.5-vl-analytic", "image")):
        m = load_profile(name).maps[kind]
        h, w = m.shape
        border = torch.cat([m[0], m[-1], m[:, 0], m[:, -1]])
        centre = m[h // 2 - 1 : h // 2 + 1, w // 2 - 1 : w // 2 + 1]
        assert float(border.min()) > 3 * float(centre.max()), name

"""Calibration: per-kind averaging by hand, and an end-to-end run on a tiny LLaVA checked against eager attention."""

from __future__ import annotations

import pytest
import torch

from tokcompress.layout import Grid, Layout, OffGrid
from tokcompress_d2pruner.calibrate import Accumulator, CalibrationSettings, calibrate, list_images
from tokcompress.study.datasets import BUNDLED_JSONL, Sample
from tokcompress.study.suite import ModelEntry

SAMPLES = BUNDLED_JSONL.parent / "samples"


def test_mean_per_kind_with_newlines_going_off_grid():
    acc = Accumulator()
    layout = Layout((Grid(2, 2, "base"), Grid(1, 2, "crop", newline=True)))  # 4 + 3 tokens, the 7th a newline
    acc.add(torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 0.5]), layout)
    acc.add(torch.tensor([3.0, 2.0, 1.0, 0.0, 30.0, 40.0, 1.5]), layout)
    maps = acc.maps()
    assert torch.equal(maps["base"], torch.full((2, 2), 2.0))
    assert torch.equal(maps["crop"], torch.tensor([[20.0, 30.0]]))
    assert torch.equal(maps["offgrid"], torch.tensor([1.0]))


def test_offgrid_dropped_when_counts_differ_and_no_layout_means_square():
    acc = Accumulator()
    acc.add(torch.tensor([1.0, 1.0, 1.0, 1.0, 5.0]), Layout((Grid(2, 2), OffGrid(1))))
    acc.add(torch.tensor([1.0, 1.0, 1.0, 1.0, 5.0, 6.0]), Layout((Grid(2, 2), OffGrid(2))))
    acc.add(torch.tensor([3.0, 3.0, 3.0, 3.0]), None)  # a square count without layout: one 2x2 "image" grid
    assert set(acc.maps()) == {"image"}
    assert torch.allclose(acc.maps()["image"], torch.full((2, 2), 5 / 3))


def test_shapes_of_one_kind_are_resampled_to_the_most_frequent():
    from tokcompress_d2pruner.profiles import resample_map

    acc = Accumulator()
    big = torch.arange(16.0).view(4, 4)
    acc.add(big.flatten(), Layout.grid(4))
    acc.add((big + 1).flatten(), Layout.grid(4))
    acc.add(torch.tensor([1.0, 2.0, 3.0, 4.0]), Layout.grid(2))
    expected = (big + 0.5) * 2 / 3 + resample_map(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), 4, 4) / 3
    assert torch.allclose(acc.maps()["image"], expected)


def test_state_round_trip():
    acc = Accumulator()
    acc.add(torch.rand(7, dtype=torch.float64), Layout((Grid(2, 2, "base"), Grid(1, 2, "crop", newline=True))))
    back = Accumulator.restore(acc.tensors(), acc.meta())
    assert all(torch.equal(back.maps()[k], v) for k, v in acc.maps().items())


def test_image_subset_is_seeded():
    all_images = list_images(SAMPLES, None, 0)
    assert [p.name for p in all_images] == sorted(p.name for p in SAMPLES.glob("*.png"))
    a, b = list_images(SAMPLES, 3, 42), list_images(SAMPLES, 3, 42)
    assert a == b and len(a) == 3 and list_images(SAMPLES, 3, 7) != a


def eager_reference(layer: int) -> dict[str, torch.Tensor]:
    """The profile computed independently: eager attention weights of layer K-1, head mean of the last row."""
    from tokcompress.study.models import load_model

    loaded = load_model(ModelEntry(source="tiny-llava", seed=42, attn_implementation="eager"))
    attn_module = loaded.model.model.language_model.layers[layer - 1].self_attn
    captured = []
    hook = attn_module.register_forward_hook(lambda m, a, out: captured.append(out[1].detach()))
    total = torch.zeros(16, dtype=torch.float64)
    for path in list_images(SAMPLES, 4, 42):
        inputs = loaded.prepare(Sample(path.name, path, "Describe this image."))
        with torch.no_grad():
            loaded.model(**inputs)
        weights = captured.pop()  # [1, H, N, N]
        image = inputs["input_ids"][0] == loaded.model.config.image_token_index
        total += weights[0, :, -1, :].mean(0)[image].double()
    hook.remove()
    return {"image": (total / 4).float().view(4, 4)}


class Interrupt(Exception):
    pass


@pytest.mark.slow
def test_calibrate_tiny_llava_matches_eager_attention_and_resumes(tmp_path):
    from tokcompress_d2pruner.profiles import load_profile

    from tokcompress.study.models import load_model

    settings = CalibrationSettings(ModelEntry(source="tiny-llava", seed=42), layer=2, seed=42)
    images = list_images(SAMPLES, 4, 42)
    full = calibrate(settings, images, tmp_path / "full", root=SAMPLES, progress=False)
    profile = load_profile(full.profile)
    assert profile.metadata["layer"] == 1 and profile.metadata["pruning_layer"] == 2
    assert profile.metadata["num_images"] == 4 and profile.metadata["analytic"] is False
    assert profile.metadata["model"] == "tiny-llava" and profile.metadata["grids"] == {"image": [4, 4]}
    assert full.heatmap.read_bytes()[:4] == b"\x89PNG"
    assert torch.allclose(profile.maps["image"], eager_reference(2)["image"], rtol=1e-4, atol=1e-7)

    # interrupted after 3 images (checkpoint every 2): the rerun measures only the rest, same result bit for bit
    calls = []

    def flaky_loader(entry):
        loaded = load_model(entry)
        prepare = loaded.prepare

        def counting(sample):
            if len(calls) == 3:
                raise Interrupt
            calls.append(sample.id)
            return prepare(sample)

        loaded.prepare = counting
        return loaded

    with pytest.raises(Interrupt):
        calibrate(settings, images, tmp_path / "resumed", root=SAMPLES, progress=False, checkpoint_every=2,
                  loader=flaky_loader)
    resumed = calibrate(settings, images, tmp_path / "resumed", root=SAMPLES, progress=False, checkpoint_every=2)
    assert resumed.measured_now == 2  # 2 were checkpointed before the interruption
    assert torch.equal(load_profile(resumed.profile).maps["image"], profile.maps["image"])
    # a rerun with everything done loads no model at all
    again = calibrate(settings, images, tmp_path / "resumed", root=SAMPLES, progress=False,
                      loader=lambda e: pytest.fail("model loaded although every image was measured"))
    assert again.measured_now == 0
    # other settings refuse the saved state instead of mixing
    with pytest.raises(Exception, match="other settings"):
        calibrate(CalibrationSettings(settings.model, layer=3, seed=42), images, tmp_path / "resumed", root=SAMPLES,
                  progress=False)


def test_calibrate_cli(tmp_path, capsys):
    from tokcompress.cli import main

    out = tmp_path / "profiles" / "tiny-k2"
    args = ["calibrate", "--model", "tiny-llava", "--images", "samples", "--num-images", "2", "--no-progress", "--threads", "1"]
    assert main([*args, "--layer", "2", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 images, 2 measured now; image (4, 4)" in printed
    assert all(out.with_suffix(s).is_file() for s in (".safetensors", ".json", ".png"))
    assert main([*args, "--layer", "4", "-o", str(tmp_path / "x")]) == 2  # the tiny LM has 4 layers: K <= 3
    assert "--layer 4: the model's language model has 4 layers" in capsys.readouterr().err
    assert main([*args, "--layer", "2", "--images", str(tmp_path / "none"), "-o", str(tmp_path / "y")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["calibrate", "--model", "tiny-llava", "-o", str(tmp_path / "z")]) == 2
    assert "--images is required (model 'tiny-llava' ships no calibration images)" in capsys.readouterr().err

"""The paths that use the project's grounding model by name: the demo, the study tooling and calibration.

Each runs on a tiny untrained model saved where the trained one goes (`DEFAULT_MODEL_DIR` patched), and
fails with a message naming the folder and the training command when no model is there.
"""

from __future__ import annotations

import json

import pytest

import tokcompress_grounding
from tokcompress import demo
from tokcompress.cli import main as cli_main
from tokcompress_grounding.model import MissingModelError, ModelSize, build_model, build_processor, save_pretrained

TINY = ModelSize(vision_hidden=16, vision_layers=1, vision_heads=2, vision_intermediate=32,
                 text_hidden=16, text_layers=3, text_heads=2, text_kv_heads=1, text_intermediate=32)  # K=2 needs 3


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    monkeypatch.setattr(tokcompress_grounding, "DEFAULT_MODEL_DIR", folder)
    return folder


@pytest.fixture
def saved(model_dir):
    save_pretrained(build_model(TINY, seed=1), build_processor(), model_dir)
    return model_dir


def test_missing_model_is_named_with_the_training_command(model_dir, tmp_path, capsys):
    from tokcompress.study.models import load_model
    from tokcompress.study.suite import ModelEntry

    assert demo.main(["--samples", "2", "--no-timing", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"no trained model at {model_dir}" in err and "python -m tokcompress_grounding.train --out" in err
    with pytest.raises(MissingModelError, match="model source 'grounding': no trained model at"):
        load_model(ModelEntry(source="grounding"))


def test_demo_runs_every_part_on_a_small_model(saved, tmp_path, capsys):
    argv = ["--samples", "2", "--budgets", "28", "--repeats", "1", "--timing-layers", "3", "--timing-hidden", "64",
            "--threads", "1", "--out", str(tmp_path)]
    assert demo.main(argv) == 0
    out = capsys.readouterr().out
    assert "1 grounding and 1 counting questions per cell" in out
    assert (tmp_path / "kept-patches.png").is_file() and (tmp_path / "report" / "report.html").is_file()
    assert "timing only" in out and "predicted" in out
    # a tiny decoder is overhead-bound: then no measured speed-up is quoted (how fast it ran depends on the machine)
    assert ("overhead-bound, so no speed-up is quoted" in out) != ("its decoder FLOPs predict" in out)


def test_study_tooling_loads_it_by_name_and_reads_its_test_set(saved):
    from tokcompress_grounding.plugin import GroundingTestDataset
    from tokcompress.study.models import load_model
    from tokcompress.study.suite import ModelEntry

    samples = GroundingTestDataset(GroundingTestDataset.Params(limit=2)).load(saved)
    assert [s.id for s in samples] == ["test-000000", "test-000001"] and samples[0].box and samples[1].answer
    loaded = load_model(ModelEntry(source="grounding", threads=1))
    assert loaded.name == "grounding" and loaded.info["class"] == "LlavaForConditionalGeneration"
    inputs = loaded.prepare(samples[0])
    assert int((inputs["input_ids"] == loaded.model.config.image_token_index).sum()) == 256


def test_calibrate_uses_its_validation_images_and_a_grounding_prompt_by_default(saved, tmp_path, capsys):
    out = tmp_path / "grounding-k1"
    argv = ["calibrate", "--model", "grounding", "--layer", "1", "--num-images", "2", "--no-progress", "--threads", "1",
            "--no-heatmap", "-o", str(out)]
    assert cli_main(argv) == 0
    assert "2 images, 2 measured now; image (16, 16)" in capsys.readouterr().out
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["prompt"] == "Where is the small red circle?" and meta["pruning_layer"] == 1

"""The committed model and test set: loadable through from_pretrained, small, and actually trained."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tokcompress.grounding import DEFAULT_MODEL_DIR, TESTSET_JSONL, load_default_model
from tokcompress.grounding.data import make_sample, write_split
from tokcompress.grounding.evaluate import evaluate_samples, is_correct, predict


@pytest.fixture(scope="module")
def shipped():
    return load_default_model()


def test_model_folder_is_a_complete_from_pretrained_folder_under_25_mb():
    names = {p.name for p in DEFAULT_MODEL_DIR.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "processor_config.json", "chat_template.jinja", "training.json"} <= names
    assert "checkpoint" not in names
    assert sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file()) < 25 * 2**20


def test_architecture_is_llava_with_a_16x16_patch_grid(shipped):
    model, processor = shipped
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    vision = model.config.vision_config
    assert vision.image_size // vision.patch_size == 16 and model.config.image_seq_length == 256
    assert type(model.model.language_model).__name__ == "LlamaModel"
    assert type(processor).__name__ == "LlavaProcessor"


def test_answers_test_samples_correctly_through_generate(shipped):
    model, processor = shipped
    samples = [make_sample(0, "test", i) for i in range(16)]
    answers = predict(model, processor, samples)
    assert is_correct(samples[0], answers[0]) and is_correct(samples[1], answers[1]), answers[:2]
    result = evaluate_samples(model, processor, samples)
    assert result.grounding >= 0.75 and result.counting >= 0.75, result


def test_recorded_test_accuracy_meets_the_bar():
    record = json.loads((DEFAULT_MODEL_DIR / "training.json").read_text())
    test = record["test"]
    assert test["n_grounding"] >= 500 and test["n_counting"] >= 500
    assert test["grounding_acc"] >= 0.8 and test["counting_acc"] >= 0.8


def test_committed_test_set_is_what_the_generator_writes(tmp_path):
    lines = TESTSET_JSONL.read_text().splitlines()
    assert len(lines) == 200
    fresh = write_split(tmp_path, "test", 3, seed=0)
    assert fresh.read_text().splitlines() == lines[:3]
    for i in range(3):
        name = f"test/test-{i:06d}.png"
        from PIL import Image

        with Image.open(TESTSET_JSONL.parent / name) as a, Image.open(tmp_path / name) as b:
            assert np.array_equal(np.asarray(a), np.asarray(b))

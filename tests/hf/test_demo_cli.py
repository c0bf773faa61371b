"""``tokcompress generate``: tiny families, a checkpoint directory, the kept-patches picture, honest timing."""

from __future__ import annotations

import json

import pytest

from tokcompress.cli import main as cli_main
from tokcompress.hf import sample_inputs


def _rows(capsys):
    return {r["name"]: r for r in json.loads(capsys.readouterr().out)}


def test_default_budget_prunes_the_default_model(capsys):
    assert cli_main(["generate", "--repeats", "1", "--max-new-tokens", "2", "--json"]) == 0
    rows = _rows(capsys)
    assert list(rows) == ["none", "d2pruner", "fastv"]
    for name in ("d2pruner", "fastv"):
        r = rows[name]
        assert (r["visual_before"], r["visual_after"], r["placement"], r["layer"]) == (16, 4, "layer", 2)  # ratio 0.25
        assert 0 < r["flops_reduction"] < 1 and r["prefill_ms"] > 0 and r["predicted_speedup"] > 1
        assert r["speedup_low"] <= r["speedup"] <= r["speedup_high"] and r["threads"] >= 1
    assert rows["none"]["speedup"] == 1.0


def test_an_overhead_bound_model_shows_no_measured_speed_up(capsys):
    assert cli_main(["generate", "--preset", "fastv", "--repeats", "1", "--max-new-tokens", "2"]) == 0
    out = capsys.readouterr().out
    assert "4/16" in out and "n/a: overhead-bound" in out and "same tokens" in out


def test_bundled_image_matches_its_drawing():
    from PIL import Image, ImageChops

    shipped = Image.open(sample_inputs.ASSET).convert("RGB")
    assert ImageChops.difference(shipped, sample_inputs.draw_demo_image()).getbbox() is None


@pytest.mark.parametrize("family", ["qwen2_vl", "smolvlm"])
def test_cli_generate_tiny_family(capsys, family):
    argv = ["generate", "--family", family, "--preset", "fastv", "uniform", "--keep", "4", "--max-new-tokens", "3",
            "--repeats", "1", "--json"]
    assert cli_main(argv) == 0
    rows = _rows(capsys)
    assert rows["fastv"]["visual_after"] == 4 and rows["uniform"]["placement"] == "pre_llm"


def test_cli_reports_a_bad_preset(capsys):
    assert cli_main(["generate", "--family", "llava", "--preset", "no-such-preset", "--repeats", "1"]) == 2
    assert "no-such-preset" in capsys.readouterr().err


def test_save_overlay_draws_the_kept_patches(tmp_path, capsys):
    from PIL import Image

    path = tmp_path / "kept.png"
    argv = ["generate", "--preset", "uniform", "--keep", "4", "--repeats", "1", "--max-new-tokens", "1", "--json",
            "--save-overlay", str(path)]
    assert cli_main(argv) == 0
    assert _rows(capsys)["uniform"]["visual_after"] == 4
    picture = Image.open(path)
    assert picture.size == (2 * (224 + 8) + 8, 224 + 22 + 16)  # two panels: none, uniform


@pytest.fixture
def checkpoint(tmp_path):
    """A tiny LLaVA saved with a processor whose tokenizer is built in code (no downloads)."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    from tokcompress.hf.tiny import build_tiny_model

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "<image>": 999}
    vocab.update({ch: 4 + i for i, ch in enumerate("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,?!:'\n ")})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                                bos_token="<s>", eos_token="</s>")
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    processor = transformers.LlavaProcessor(image_processor=cls(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56}),
                                            tokenizer=fast, patch_size=14, vision_feature_select_strategy="default",
                                            image_token="<image>", num_additional_image_tokens=1)
    model, _ = build_tiny_model("llava")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    return tmp_path


def test_cli_loads_a_checkpoint_directory_and_nothing_else(checkpoint, capsys):
    assert cli_main(["generate", "--model", str(checkpoint), "--preset", "uniform", "--ratio", "0.5", "--repeats", "1",
                     "--max-new-tokens", "2", "--json"]) == 0
    assert _rows(capsys)["uniform"]["visual_after"] == 8
    assert cli_main(["generate", "--model", "llava-hf/llava-1.5-7b-hf", "--repeats", "1"]) == 2  # never the hub
    assert "neither a local checkpoint folder nor a registered model source" in capsys.readouterr().err

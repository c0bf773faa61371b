"""Study fixtures: suite files on a temp path and a model-free worker for runner/database tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from study_fakes import FakeWorker


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a shared machine spinning OpenMP threads cost 10-20x."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fake_worker():
    FakeWorker.calls = []
    return FakeWorker


def base_suite(**overrides) -> dict:
    suite = {
        "name": "unit",
        "models": ["tiny-llava"],
        "dataset": {"name": "samples", "limit": 3},
        "specs": ["fastv", "random"],
        "budgets": [4, 0.5],
        "metrics": ["first_token_agreement", "kl_next_token", "kept_tokens"],
    }
    suite.update(overrides)
    return suite


@pytest.fixture
def suite_file(tmp_path):
    """``suite_file(**fields) -> Path`` of a suite YAML on tmp_path (fields override a small default)."""

    def write(name: str = "suite.yaml", **overrides) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(base_suite(**overrides)))
        return path

    return write


def write_tiny_checkpoint(folder: Path) -> Path:
    """A tiny LLaVA saved like a hub checkpoint: weights, config, processor with a word-level tokenizer and a chat template."""
    import transformers as tf
    from tokenizers import Tokenizer, models, pre_tokenizers

    from tokcompress.hf.tiny import build_tiny_model

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for word in "USER: ASSISTANT: what shape colour is in the image ? answer with one word . give".split():
        vocab.setdefault(word, len(vocab))
    vocab.update({f"w{i}": i for i in range(len(vocab), 999)})
    vocab["<image>"] = 999  # the tiny models' image token id
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = tf.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                           unk_token="<unk>")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    template = ("{% for m in messages %}{{ m['role'].upper() }}: {% for c in m['content'] %}{% if c['type'] == 'image' %}"
                "<image> {% else %}{{ c['text'] }} {% endif %}{% endfor %}{% endfor %}"
                "{% if add_generation_prompt %}ASSISTANT:{% endif %}")
    images = tf.CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
    processor = tf.LlavaProcessor(image_processor=images, tokenizer=tokenizer, chat_template=template, patch_size=14,
                                  vision_feature_select_strategy="default", image_token="<image>",
                                  num_additional_image_tokens=1)
    model, _ = build_tiny_model("llava", seed=0)
    processor.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder

"""A model-free worker for runner, database and Ray tests (importable by name, so Ray workers can load it)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tokcompress.study.runner import WorkerConfig


class FakeWorker:
    """Deterministic metrics from the row's identity; counts calls; can raise after N rows (injected kill)."""

    calls: list[tuple[str, str, str, str]] = []

    def __init__(self, config: WorkerConfig, interrupt_after: int | None = None, fail_on: str | None = None) -> None:
        self.config = config
        self.interrupt_after = interrupt_after
        self.fail_on = fail_on

    def environment(self):
        return {"versions": {"fake": "1"}, "machine": {"host": "test", "pid": os.getpid()}}

    def evaluate(self, sample, variant):
        if self.interrupt_after is not None and len(FakeWorker.calls) >= self.interrupt_after:
            raise KeyboardInterrupt  # what Ctrl-C or a kill looks like to the runner: not an ordinary failure
        if self.fail_on is not None and variant.label == self.fail_on:
            raise ValueError(f"cannot run {variant.label}")
        FakeWorker.calls.append((self.config.model.name, sample.id, variant.label, variant.budget))
        digest = hashlib.sha256(f"{self.config.model.name}|{sample.id}|{variant.label}|{variant.budget}|{variant.seed}".encode())
        value = digest.digest()[0] / 255
        keep = variant.budget_kwargs.get("keep", 16)
        return {
            "metrics": {"first_token_agreement": float(value > 0.5), "kl_next_token": value, "kept_tokens": float(keep)},
            "output": {"text": f"out-{sample.id}"},
        }

    def close(self):
        pass


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

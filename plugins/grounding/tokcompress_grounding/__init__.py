"""A small trained LLaVA-architecture model for referring-expression grounding and counting.

Its trained weights ship with the package (``DEFAULT_MODEL_DIR``, 4.5 MB) so pruning fidelity can be
measured as task accuracy on a model that learned something, with no downloads (docs/grounding-model.md:
model card, training command, accuracy, the pruning suite run on it).

    from tokcompress_grounding import load_default_model
    model, processor = load_default_model()

Submodules: `data` (seeded scene generator, JSONL splits), `model` (architecture, tokenizer,
processor), `supervision` (per-patch training targets), `attention_target` (attention targets of
a few LM heads during training), `train` (training script), `evaluate` (accuracy through ``generate``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_MODEL_DIR", "TESTSET_JSONL", "CALIBRATION_IMAGES", "DEFAULT_TEMPLATE", "load_default_model", "format_prompt"]

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "model"
"""Where the trained model goes: a ``from_pretrained`` folder (config, safetensors, tokenizer, processor)."""

TESTSET_JSONL = Path(__file__).resolve().parent / "testset" / "test.jsonl"
"""The first 200 test samples (100 grounding, 100 counting) in the study tooling's JSONL format, PNGs beside it.
Regenerate: ``python -m tokcompress_grounding.data --out plugins/grounding/tokcompress_grounding/testset --val 0 --test 200``."""

CALIBRATION_IMAGES = Path(__file__).resolve().parent / "calibration" / "val"
"""64 validation-split images (never test images) for measuring the model's positional-bias profile.
Regenerate: ``python -m tokcompress_grounding.data --out plugins/grounding/tokcompress_grounding/calibration --val 64 --test 0``."""

DEFAULT_TEMPLATE = "chat"
"""Prompt format the model answers best in: ``"USER: <image>\\n{question} ASSISTANT:"``."""


def load_default_model():
    """``(model, processor)`` of the shipped model, loaded with ``from_pretrained`` (fp32, eval mode)."""
    from .model import load_pretrained

    return load_pretrained(DEFAULT_MODEL_DIR)


def format_prompt(question: str, template: str = DEFAULT_TEMPLATE) -> str:
    """The model's prompt for a question, image placeholder included (see `model.TEMPLATES`)."""
    from .model import format_prompt as _format

    return _format(question, template)

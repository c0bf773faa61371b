"""Constants and helpers shared by the integration tests (imported by name; fixtures stay in conftest)."""

from __future__ import annotations

from tokcompress.hf.tiny import Image

SUPPRESS = list(range(990, 1000))
"""Image-related ids of the tiny vocabulary; never generated, so a new token is never an image token."""

UNIFORM = {"pre_llm": {"apply": {"placement": "pre_llm"}, "selector": "uniform"},
           "layer": {"apply": {"placement": "layer", "layer": 2}, "selector": "uniform"}}
"""Content-independent selection: the same kept set whatever the batch or the tokens after the prompt."""

FASTV = {"pre_llm": {"apply": {"placement": "pre_llm"}, "selector": "uniform"},
         "layer": {"apply": {"placement": "layer", "layer": 2}, "scorer": "attention", "selector": "topk"}}
"""Attention-driven in-LLM pruning (the probe runs); pre-LLM placement has no attention, so uniform."""


def second_image(family: str) -> Image:
    """An image of another size or tiling than `Image()`, so batch rows hold different visual counts."""
    return {
        "llava_next": Image(100, 20),
        "qwen2_vl": Image(56, 112),
        "qwen2_5_vl": Image(56, 112),
        "qwen3_vl": Image(64, 128),
        "internvl": Image(tiles=2),
        "smolvlm": Image(tiles=2),
    }.get(family, Image())

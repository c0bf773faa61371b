"""Tiny models shared by the integration tests (built once per session; attach/remove leaves them unchanged)."""

from __future__ import annotations

import pytest
import torch

from tokcompress.hf.tiny import Image, build_tiny_model

SUPPRESS = list(range(990, 1000))
"""Image-related ids of the tiny vocabulary; never generated, so a new token is never an image token."""

UNIFORM = {"pre_llm": {"placement": "pre_llm", "selector": "uniform"},
           "layer": {"placement": "layer", "layer": 2, "selector": "uniform"}}
"""Content-independent selection: the same kept set whatever the batch or the tokens after the prompt."""

FASTV = {"pre_llm": {"placement": "pre_llm", "selector": "uniform"},
         "layer": {"placement": "layer", "layer": 2, "scorer": "attention", "selector": "topk"}}
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


@pytest.fixture(scope="session")
def tiny():
    """``tiny(family, **kw)`` -> a cached tiny model of `family` (grad disabled by the caller's no_grad)."""
    cache: dict = {}

    def get(family: str, **kwargs):
        key = (family, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = build_tiny_model(family, **kwargs)[0]
        return cache[key]

    return get


@pytest.fixture(autouse=True)
def _no_grad_one_thread():
    """Tiny models gain nothing from threads, and on a loaded machine extra threads cost 100x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            yield
    finally:
        torch.set_num_threads(threads)

"""Tiny models shared by the integration tests (built once per session; attach/remove leaves them unchanged)."""

from __future__ import annotations

import pytest
import torch

from tokcompress.hf.tiny import build_tiny_model


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

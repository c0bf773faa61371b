"""Transformers integration: `attach` a pruner to a Hugging Face VLM and prune during `generate`.

Importing this package is light; transformers is imported on first use of `attach`, the adapters'
layout code or `tiny`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["attach", "PruningHandle", "PruneStats", "ModelAdapter", "build_tiny_model", "FAMILIES"]

_EXPORTS = {
    "attach": ("tokcompress.hf.handle", "attach"),
    "PruningHandle": ("tokcompress.hf.handle", "PruningHandle"),
    "PruneStats": ("tokcompress.hf.stats", "PruneStats"),
    "ModelAdapter": ("tokcompress.hf.adapters.base", "ModelAdapter"),
    "build_tiny_model": ("tokcompress.hf.tiny", "build_tiny_model"),
    "FAMILIES": ("tokcompress.hf.tiny", "FAMILIES"),
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        module, attr = _EXPORTS[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'tokcompress.hf' has no attribute {name!r}")

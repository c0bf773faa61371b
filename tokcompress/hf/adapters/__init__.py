"""Model adapters: one per VLM architecture, registered through the ``tokcompress_register_model_adapters`` hook."""

from __future__ import annotations

from ...catalog import Kind, get_catalog
from ...errors import InputError, PluginError
from .base import CallInputs, ModelAdapter, VisionSide
from .gemma3 import Gemma3Adapter
from .internvl import InternVLAdapter
from .llava import LlavaAdapter, LlavaNextAdapter
from .qwen import Qwen3VLAdapter, Qwen25VLAdapter, QwenVLAdapter
from .smolvlm import SmolVLMAdapter

BUILTIN_ADAPTERS = (
    LlavaAdapter,
    LlavaNextAdapter,
    QwenVLAdapter,
    Qwen25VLAdapter,
    Qwen3VLAdapter,
    InternVLAdapter,
    Gemma3Adapter,
    SmolVLMAdapter,
)

__all__ = ["ADAPTER_KIND", "BUILTIN_ADAPTERS", "CallInputs", "ModelAdapter", "VisionSide", "find_adapter", "registered_adapters"]


ADAPTER_KIND = Kind("tokcompress_register_model_adapters", ModelAdapter, key="family")
"""Model adapters, keyed by family, through the catalog's one collector."""


def registered_adapters() -> list[type[ModelAdapter]]:
    """Every adapter class from the plugin hook, in registration order; duplicate families are an error."""
    entries = get_catalog().entries("model_adapter", ADAPTER_KIND)
    for e in entries.values():
        if not e.cls.architectures:
            raise PluginError(f"{e.provider}: model adapter {e.cls.__qualname__} needs `architectures`")
    return [e.cls for e in entries.values()]


def find_adapter(model) -> ModelAdapter:
    """The adapter instance for `model`; an unsupported class is an error listing the supported ones."""
    adapters = registered_adapters()
    for cls in adapters:
        if cls.matches(model):
            return cls(model)
    supported = sorted(a for cls in adapters for a in cls.architectures)
    raise InputError(
        f"tokcompress.attach does not support {type(model).__name__}; supported architectures: "
        f"{', '.join(supported)}. Add one with a ModelAdapter registered through the "
        "tokcompress_register_model_adapters hook (see docs/transformers.md)"
    )

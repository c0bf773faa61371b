"""Model adapters: one per VLM architecture, registered through the ``tokcompress_register_model_adapters`` hook."""

from __future__ import annotations

from .base import CallInputs, ModelAdapter
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

__all__ = ["BUILTIN_ADAPTERS", "CallInputs", "ModelAdapter", "find_adapter", "registered_adapters"]


def registered_adapters() -> list[type[ModelAdapter]]:
    """Every adapter class from the plugin hook, in registration order; duplicate families are an error."""
    from ...errors import PluginError
    from ...plugins import get_plugin_manager

    pm = get_plugin_manager()
    seen: dict[str, tuple[type, str]] = {}
    out = []
    for impl in reversed(pm.hook.tokcompress_register_model_adapters.get_hookimpls()):
        provider = pm.provider(impl.plugin_name)
        for cls in impl.function() or ():
            if not (isinstance(cls, type) and issubclass(cls, ModelAdapter)):
                raise PluginError(f"{provider} registered {cls!r} as a model adapter, but it is not a ModelAdapter subclass")
            if not cls.family or not cls.architectures:
                raise PluginError(f"{provider}: model adapter {cls.__qualname__} needs `family` and `architectures`")
            if cls.family in seen:
                other, who = seen[cls.family]
                raise PluginError(
                    f"duplicate model adapter family {cls.family!r}: {other.__qualname__} from {who} "
                    f"and {cls.__qualname__} from {provider}"
                )
            seen[cls.family] = (cls, provider)
            out.append(cls)
    return out


def find_adapter(model) -> ModelAdapter:
    """The adapter instance for `model`; an unsupported class is an error listing the supported ones."""
    from ...errors import InputError

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

"""tokcompress: compose visual-token pruners for multimodal LLMs from pluggable stages.

    import tokcompress
    pruner = tokcompress.build_pruner(tokcompress.load_spec("fastv"))
    keep = pruner.select(tokcompress.VisualTokens(features, attention=attn), keep=64)
"""

from .errors import InputError, PluginError, SpecError, StageError, TokcompressError
from .budget import Budget
from .flops import flops
from .layout import Grid, Layout, OffGrid
from .pruner import Compressed, Pruner, Selection, build_pruner, resolve_budget
from .spec import PrunerSpec, load_spec
from .tokens import VisualTokens

__version__ = "0.1.0"

__all__ = [
    "Budget",
    "Compressed",
    "Selection",
    "Grid",
    "InputError",
    "Layout",
    "OffGrid",
    "PluginError",
    "Pruner",
    "PrunerSpec",
    "SpecError",
    "StageError",
    "TokcompressError",
    "VisualTokens",
    "build_pruner",
    "load_spec",
    "resolve_budget",
    "attach",
    "flops",
]

# `attach` is loaded on first use so that `import tokcompress` never imports transformers. `flops` is
# light and imported eagerly: the function must shadow its own submodule `tokcompress.flops`.
_LAZY = {"attach": ("tokcompress.hf.handle", "attach")}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'tokcompress' has no attribute {name!r}")

"""tokcompress: compose visual-token pruners for multimodal LLMs from pluggable stages.

    import tokcompress
    pruner = tokcompress.build_pruner(tokcompress.load_spec("fastv"))
    keep = pruner.select(tokcompress.VisualTokens(features, attention=attn), keep=64)
"""

from .errors import InputError, PluginError, SpecError, StageError, TokcompressError
from .layout import Grid, Layout, OffGrid
from .pruner import Compressed, Pruner, build_pruner, resolve_budget
from .spec import PrunerSpec, load_spec
from .tokens import VisualTokens

__version__ = "0.1.0"

__all__ = [
    "Compressed",
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
]

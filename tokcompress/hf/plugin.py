"""Built-in plugin of the transformers integration: registers the model adapters of `tokcompress.hf.adapters`.

Importing it stays light (no transformers import): adapters import transformers lazily.
"""

from __future__ import annotations

from ..hookspecs import hookimpl


@hookimpl
def tokcompress_register_model_adapters():
    from .adapters import BUILTIN_ADAPTERS

    return list(BUILTIN_ADAPTERS)

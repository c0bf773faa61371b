"""Built-in plugin of the transformers integration: model adapters, placements and ``tokcompress generate``.

Importing it stays light (no transformers import): adapters and placements import transformers lazily.
"""

from __future__ import annotations

from ..hookspecs import hookimpl


@hookimpl
def tokcompress_register_model_adapters():
    from .adapters import BUILTIN_ADAPTERS

    return list(BUILTIN_ADAPTERS)


@hookimpl
def tokcompress_register_placements():
    from .placements import PLACEMENTS

    return list(PLACEMENTS)


@hookimpl
def tokcompress_register_commands():
    from .cli_generate import GenerateCommand

    return [GenerateCommand]

"""Exception types: every message names the field, the value, and what was expected."""

from __future__ import annotations

import difflib
import reprlib
from typing import Iterable

__all__ = [
    "TokcompressError",
    "DocumentError",
    "InputError",
    "SpecError",
    "PluginError",
    "StageError",
    "shorten",
    "unknown_name",
]


class TokcompressError(Exception):
    """Base class of every error this library raises on purpose."""


class DocumentError(TokcompressError, ValueError):
    """A YAML/JSON document cannot be read: unreadable, too large, not UTF-8, malformed or unsafe."""


class InputError(TokcompressError, ValueError):
    """The tensors or budget handed to a pruner are unusable."""


class SpecError(TokcompressError, ValueError):
    """A pruner spec (preset, YAML/JSON file, dict) does not validate."""


class PluginError(TokcompressError):
    """Plugins conflict (duplicate names) or declare something invalid."""


class StageError(TokcompressError, RuntimeError):
    """A stage component returned something that breaks the stage contract."""


def unknown_name(what: str, name: object, available: Iterable[str]) -> str:
    """Message for an unknown name: the name, a close match if any, and every available name."""
    names = sorted(available)
    close = difflib.get_close_matches(str(name), names, n=1) if len(str(name)) <= 200 else []
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {shorten(name)}.{hint} Available: {', '.join(names) if names else '(none)'}"


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 3, 6, 6, 6, 6
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = 160, 60, 160


def shorten(value: object, limit: int = 200, quote: bool = True) -> str:
    """`value` for an error message, never longer than about `limit` characters.

    ``quote=True`` gives a bounded repr (cheap even for huge nested data); ``quote=False`` truncates ``str(value)``.
    Messages must not echo a hostile input whole: a 1 MB string or a 100 000-item list stays short.
    """
    text = _REPR.repr(value) if quote else str(value)
    if len(text) <= limit:
        return text
    return f"{text[: max(limit - 30, 10)]}... ({len(text)} characters)"

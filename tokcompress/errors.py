"""Exception types: every message names the field, the value, and what was expected."""

from __future__ import annotations

import difflib
from typing import Iterable

__all__ = ["TokcompressError", "InputError", "SpecError", "PluginError", "StageError", "unknown_name"]


class TokcompressError(Exception):
    """Base class of every error this library raises on purpose."""


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
    close = difflib.get_close_matches(str(name), names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {name!r}.{hint} Available: {', '.join(names) if names else '(none)'}"

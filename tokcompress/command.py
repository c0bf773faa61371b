"""`Command`: a ``tokcompress`` subcommand, registered through ``tokcompress_register_commands``.

The core's own verbs (``plugins``, ``presets``, ``schema``, ``validate``), the study tooling's and
the integration's come through the same hook a third party uses. `add_arguments` must stay cheap
(it runs for every invocation); heavy imports belong in `run`.
"""

from __future__ import annotations

import argparse
from typing import ClassVar

__all__ = ["Command", "positive_int"]


def positive_int(text: str) -> int:
    """argparse type: an int >= 1 (``--threads -3`` is an error, never silently clamped)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {value}")
    return value


class Command:
    name: ClassVar[str]
    help: ClassVar[str] = ""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Declare the command's arguments."""

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        """Do the work; return the exit status. Raise `TokcompressError` for a one-line error."""
        raise NotImplementedError

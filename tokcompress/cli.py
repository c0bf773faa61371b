"""``tokcompress`` command line: every subcommand comes from the ``tokcompress_register_commands`` hook.

The core registers its own verbs (`tokcompress.cli_commands`) through that hook exactly like the
study tooling, the transformers integration and third parties do.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .catalog import get_catalog
from .errors import TokcompressError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokcompress", description="compose and apply visual-token pruners")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, entry in get_catalog().entries("command").items():
        p = sub.add_parser(name, help=entry.cls.help)
        entry.cls.add_arguments(p)
        p.set_defaults(func=entry.cls.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except TokcompressError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

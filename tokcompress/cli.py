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
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, entry in get_catalog().entries("command").items():
        p = sub.add_parser(name, help=entry.cls.help)
        entry.cls.add_arguments(p)
        p.set_defaults(func=entry.cls.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand. A bad input is one line on stderr and exit status 2; any other failure one line
    and status 1; ``--debug`` (before the subcommand) shows the traceback instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv[:1]
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the command line reports, --debug shows the traceback
        if debug:
            raise
        message = str(exc).strip() or type(exc).__name__
        if isinstance(exc, TokcompressError):
            print(f"error: {message}", file=sys.stderr)
            return 2
        print(f"error: {type(exc).__name__}: {message} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

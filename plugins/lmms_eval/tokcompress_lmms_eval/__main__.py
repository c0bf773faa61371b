"""``tokcompress-lmms-eval tasks [--out DIR]``: write the offline tasks and print their folder for ``--include_path``."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    from .tasks import TASK, default_dir, write_tasks

    parser = argparse.ArgumentParser(prog="tokcompress-lmms-eval", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    tasks = sub.add_parser("tasks", help=f"write the {TASK} task YAML and print its folder")
    tasks.add_argument("--out", help=f"folder to write into (default: {default_dir()})")
    args = parser.parse_args(argv)
    print(write_tasks(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``tokcompress report RESULTS``: tables with confidence intervals, PNG plots and a self-contained HTML page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ...command import Command, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, help="results database (.sqlite) or a run folder holding results.sqlite")
    parser.add_argument("-o", "--out", type=Path, help="output folder (default: <database folder>/report)")
    parser.add_argument("--suite", help="only rows recorded by this suite")
    parser.add_argument("--metric", action="append", help="only this metric (repeatable; default: every recorded one)")
    parser.add_argument("--no-plots", action="store_true", help="tables and HTML only")
    parser.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    parser.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples (default 2000)")


def run(args: argparse.Namespace) -> int:
    from ..report import write_report

    db = args.results / "results.sqlite" if args.results.is_dir() else args.results
    if not 0 < args.level < 1 or args.resamples < 1:
        print(f"error: --level must be in (0, 1) and --resamples >= 1, got {args.level}, {args.resamples}", file=sys.stderr)
        return 2
    try:
        files = write_report(db, args.out or db.parent / "report", suite=args.suite, metrics=args.metric,
                             plots=not args.no_plots, level=args.level, resamples=args.resamples)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {files.html}; summary: {files.summary}; {len(files.plots)} plot(s)")
    return 0


class ReportCommand(Command):
    name = "report"
    help = "tables, plots and an HTML report from a results database"
    add_arguments = staticmethod(add_arguments)
    run = staticmethod(run)

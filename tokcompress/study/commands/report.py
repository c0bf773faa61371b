"""``tokcompress report RESULTS``: tables with intervals and n, paired comparisons, figures, one HTML page."""

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
    parser.add_argument("--baseline", metavar="SPEC",
                        help="spec every other spec is compared with, sample by sample (default: the first pruned spec; "
                             "'unpruned' compares each with the unpruned model)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")


def run(args: argparse.Namespace) -> int:
    from ..report import write_report

    db = args.results / "results.sqlite" if args.results.is_dir() else args.results
    if not 0 < args.level < 1 or args.resamples < 1:
        print(f"error: --level must be in (0, 1) and --resamples >= 1, got {args.level}, {args.resamples}", file=sys.stderr)
        return 2
    try:
        files = write_report(db, args.out or db.parent / "report", suite=args.suite, metrics=args.metric,
                             plots=not args.no_plots, level=args.level, resamples=args.resamples,
                             baseline=args.baseline, seed=args.seed)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    skipped = sum(1 for f in files.figures if f.skipped)
    print(f"report: {files.html}; summary: {files.summary}; tables: {files.html.parent / 'tables'}; "
          f"{len(files.plots)} figure(s)" + (f", {skipped} skipped (see the page)" if skipped else ""))
    return 0


class ReportCommand(Command):
    name = "report"
    help = "tables, plots and an HTML report from a results database"
    add_arguments = staticmethod(add_arguments)
    run = staticmethod(run)

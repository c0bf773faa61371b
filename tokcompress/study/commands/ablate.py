"""``tokcompress ablate SUITE``: run a suite's cross product into a results database, then report."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...command import Command, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", help="suite YAML file, or the name of a shipped suite (registry/suites/)")
    parser.add_argument("--run-dir", type=Path, help="folder for the database, report and Ray files (default: runs/<suite name>)")
    parser.add_argument("--db", type=Path, help="results database (default: <run-dir>/results.sqlite)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="local: this process (default); ray: one Ray worker per model (pip install 'tokcompress[ray]')")
    parser.add_argument("--ray-address", help="connect to a running Ray cluster instead of starting a local one")
    parser.add_argument("--ray-cpus", type=positive_int, help="CPUs of the local Ray instance (default: all)")
    parser.add_argument("--keep-going", action="store_true", help="record the rows that work, list the failures, exit 1")
    parser.add_argument("--no-report", action="store_true", help="skip the tables and plots after the run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--dry-run", action="store_true", help="validate the suite and print the row counts only")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's own; 1 is fastest for tiny models on a busy machine)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..db import ResultsDB
    from ..plan import build_plan
    from ..runner import run_suite
    from ..suite import load_suite

    console = Console(stderr=True)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    loaded = load_suite(args.suite)
    run_dir = args.run_dir or Path("runs") / loaded.name
    db_path = args.db or run_dir / "results.sqlite"
    plan = build_plan(loaded)
    per_sample = len(plan.variants)
    console.print(
        f"suite [bold]{loaded.name}[/] ({loaded.origin}): {len(loaded.suite.models)} model(s) x {len(plan.samples)} "
        f"sample(s) x {per_sample} configuration(s) = {len(plan.tasks)} rows -> {db_path}"
    )
    if args.dry_run:
        return 0
    executor = None
    if args.backend == "ray":
        from ..ray_backend import RayExecutor

        executor = RayExecutor(temp_dir=run_dir / "ray", address=args.ray_address, num_cpus=args.ray_cpus)
    with ResultsDB(db_path) as db:
        try:
            summary = run_suite(loaded, db, executor=executor, keep_going=args.keep_going,
                                progress=not args.no_progress, plan=plan)
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted[/]: {db.count()} rows recorded in {db_path}; run the same command to resume")
            return 130
        total = db.count()
    console.print(
        f"{summary.written} row(s) written, {summary.skipped} already recorded, {len(summary.failed)} failed "
        f"in {summary.seconds:.1f} s; database holds {total} rows"
    )
    for task, error in summary.failed[:20]:
        console.print(f"  [red]failed[/] {task.key.model} | {task.key.sample} | {task.variant.label} {task.key.budget}: {error}")
    if not args.no_report and summary.written + summary.skipped:
        from ..report import write_report

        files = write_report(db_path, run_dir / "report", suite=loaded.name)
        console.print(f"report: {files.html} ({len(files.plots)} plots in {files.html.parent / 'plots'})")
    return 0 if summary.complete else 1


class AblateCommand(Command):
    name = "ablate"
    help = "run an ablation suite into a results database (resumable)"
    add_arguments = staticmethod(add_arguments)
    run = staticmethod(run)

"""Turn a results database into a report: tables with intervals and n, paired comparisons, figures, HTML.

For each model, dataset and metric: a table whose rows are specs and columns budgets, each cell the
mean over samples with its interval and n (`aggregate`); a paired table of every spec against a baseline
spec on the samples both have (`paired`); a figure of the metric against the retained visual tokens
(`figures`). `tables` exports CSV, Markdown and LaTeX; `page` renders one self-contained HTML file. This
module reads the database, drives the rest and prints the tables.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .aggregate import Cell, MetricTable, budget_order, build_tables, latest_config
from .db import ResultsDB
from .figures import plotting_available, write_figures
from .page import write_html
from .paired import build_paired
from .tables import display_main, display_paired_grid, write_tables

__all__ = ["Cell", "MetricTable", "ReportFiles", "budget_order", "build_tables", "latest_config", "write_report"]

PLOTS_HINT = "plots skipped: matplotlib is not installed (pip install 'tokcompress[plots]'); tables and HTML written"


# -- console -----------------------------------------------------------------------------------------


def print_tables(tables: list[MetricTable], console=None, paired: list | None = None) -> None:
    """The main tables (and the paired differences, compactly) on the terminal, numbers as in the exports."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    by_key = {p.key: p for p in paired or []}
    for t in tables:
        shown = display_main(t)
        table = Table("spec", *shown.columns, title=t.title, caption=shown.caption or None)
        for header, cells in shown.rows:
            table.add_row(header, *(c.text + (f" (n={c.n})" if c.mark_n else "") for c in cells))
        console.print(table)
        p = by_key.get(t.key)
        if p is not None and p.rows:
            grid = display_paired_grid(p)
            ptable = Table("spec", *grid.columns, title=f"difference from {p.baseline} - {t.info.title}",
                           caption=grid.caption)
            for header, cells in grid.rows:
                ptable.add_row(header, *cells)
            console.print(ptable)



def _provenance(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def distinct(col: str) -> list[Any]:
        seen: list[Any] = []
        for r in rows:
            if r.get(col) not in seen:
                seen.append(r.get(col))
        return seen

    return {"suites": distinct("suite"), "versions": distinct("versions"), "machines": distinct("machine")}


def spec_definitions(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any] | None]]:
    """spec label -> the distinct specs that ran under it (several when seeds or placements vary)."""
    out: dict[str, list[dict[str, Any] | None]] = {}
    for r in rows:
        seen = out.setdefault(r["spec"], [])
        if r.get("spec_json") not in seen:
            seen.append(r.get("spec_json"))
    return out


@dataclass
class ReportFiles:
    tables: list[MetricTable]
    html: Path
    plots: list[Path]
    summary: Path
    paired: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    exports: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def write_report(
    db_path: Path,
    out_dir: Path,
    suite: str | None = None,
    metrics: list[str] | None = None,
    plots: bool = True,
    level: float = 0.95,
    resamples: int = 2000,
    console=None,
    quiet: bool = False,
    baseline: str | None = None,
    seed: int = 0,
) -> ReportFiles:
    """Print the tables; write ``summary.json``, ``tables/`` (CSV, Markdown, LaTeX), ``plots/`` (PNG, SVG,
    PDF) and ``report.html`` under `out_dir`. `baseline` is the spec every other is compared with
    (default: the first pruned spec of each table)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if not (isinstance(resamples, int) and resamples >= 1):
        raise ValueError(f"resamples must be an integer >= 1, got {resamples!r}")
    db_path, out_dir = Path(db_path), Path(out_dir)
    if not db_path.is_file():
        raise FileNotFoundError(f"no results database at {db_path}")
    with ResultsDB(db_path, create=False) as db:
        rows = db.rows({"suite": suite} if suite else None)
    if not rows:
        raise ValueError(f"results database {db_path} holds no rows" + (f" for suite {suite!r}" if suite else ""))
    current, superseded = latest_config(rows)
    tables = build_tables(current, metrics, level, resamples, seed)
    paired = build_paired(tables, baseline, level, resamples, seed)
    notes: list[str] = []
    if superseded:
        notes.append(f"{superseded} older rows recorded with other settings or an earlier definition of their spec are not shown")
    unregistered = sorted({t.metric for t in tables if not t.info.registered})
    if unregistered:
        notes.append(f"no installed metric class for {', '.join(unregistered)}: shown under the id, as continuous, no direction")
    if not quiet:
        print_tables(tables, console, paired)
        for note in notes:
            print(f"note: {note}")
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    if plots:
        if plotting_available():
            figures = write_figures(tables, out_dir / "plots")
        else:
            notes.append(PLOTS_HINT)
            print(f"note: {PLOTS_HINT}", file=sys.stderr)
    exports = write_tables(tables, paired, out_dir / "tables")
    info = {
        "summary": f"{len(current)} rows from {db_path}" + (f" (suite {suite})" if suite else ""),
        "notes": notes,
        "level": level,
        "resamples": resamples,
        "seed": seed,
        "baseline": baseline,
        "provenance": _provenance(current),
    }
    summary = out_dir / "summary.json"
    summary.write_text(json.dumps({
        **info,
        "tables": [t.to_dict() for t in tables],
        "paired": [p.to_dict() for p in paired],
        "figures": [f.to_dict() for f in figures],
    }, indent=2, allow_nan=True))
    page = write_html(out_dir / "report.html", tables, paired, figures, info, spec_definitions(current))
    pngs = [f.paths["png"] for f in figures if f.written]
    return ReportFiles(tables, page, pngs, summary, paired, figures, exports, notes)

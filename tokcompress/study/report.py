"""Turn a results database into a report: tables with intervals and n, paired comparisons, figures, HTML.

For each model, dataset and metric: a table whose rows are specs and columns budgets, each cell the
mean over samples with its interval and n (seeds are averaged per sample first, so the interval is over
samples; `stats` chooses Wilson or BCa from the metric's declared value type); a paired table of every
spec against a baseline spec on the samples both have (`paired`); a figure of the metric against the
retained visual tokens (`figures`). `tables` exports CSV, Markdown and LaTeX; `page` renders one
self-contained HTML file. This module gathers the rows and drives the rest.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .db import ResultsDB
from .metricinfo import MetricInfo, metric_info
from .plan import UNPRUNED
from .stats import Estimate, estimate

__all__ = ["Cell", "MetricTable", "ReportFiles", "budget_order", "build_tables", "latest_config", "write_report"]

PLOTS_HINT = "plots skipped: matplotlib is not installed (pip install 'tokcompress[plots]'); tables and HTML written"


@dataclass
class Cell:
    estimate: Estimate
    retained: float | None  # mean visual tokens kept (the plot's x)


@dataclass
class MetricTable:
    model: str
    dataset: str
    metric: str
    specs: list[str]
    budgets: list[str]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    info: MetricInfo | None = None
    values: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict, repr=False)
    """(spec, budget) -> sample -> value (seeds averaged): what the paired comparisons pair up."""

    def __post_init__(self) -> None:
        if self.info is None:
            self.info = metric_info(self.metric)

    @property
    def title(self) -> str:
        return f"{self.info.title} - {self.model} on {self.dataset}"

    @property
    def key(self) -> str:
        """File stem of its figure and tables: ``MODEL__DATASET__METRIC`` (slugs)."""
        return f"{self.group}__{_slug(self.metric)}"

    @property
    def group(self) -> str:
        """``MODEL__DATASET``: the stem of the small-multiples figure of every metric of both."""
        return f"{_slug(self.model)}__{_slug(self.dataset)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "metric": self.metric,
            "title": self.info.title,
            "unit": self.info.unit,
            "higher_is_better": self.info.higher_is_better,
            "value_type": "binary" if self.info.binary else "continuous",
            "cells": [
                {"spec": s, "budget": b, "mean": c.estimate.mean, "low": c.estimate.low, "high": c.estimate.high,
                 "n": c.estimate.n, "interval": c.estimate.method, "retained": c.retained}
                for (s, b), c in self.cells.items()
            ],
        }


def budget_order(label: str) -> tuple[int, float]:
    """Counts ascending, then ratios ascending, then ``all``."""
    kind, _, value = label.partition("=")
    if kind == "keep":
        return (0, float(value))
    if kind == "ratio":
        return (1, float(value))
    return (2, 0.0)


def _retained(row: dict[str, Any]) -> float | None:
    out = row.get("output") or {}
    if isinstance(out.get("visual_after"), (int, float)):
        return float(out["visual_after"])
    kept = (row.get("metrics") or {}).get("kept_tokens")
    return float(kept) if isinstance(kept, (int, float)) else None


def latest_config(rows: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Rows of the most recently recorded settings (``config_hash``) of each (model, dataset, sample), and how
    many older rows were set aside. Rows are in insertion order; changing generation length or metric
    parameters records new rows under a new config hash, and the report shows the current ones only."""
    rows = list(rows)
    latest = {(r["model"], r["dataset"], r["sample"]): r["config_hash"] for r in rows}
    kept = [r for r in rows if r["config_hash"] == latest[(r["model"], r["dataset"], r["sample"])]]
    return kept, len(rows) - len(kept)


def build_tables(
    rows: Iterable[dict[str, Any]], metrics: list[str] | None = None, level: float = 0.95, resamples: int = 2000,
    seed: int = 0,
) -> list[MetricTable]:
    """One `MetricTable` per (model, dataset, metric), in first-seen order (rows of the latest settings only)."""
    rows, _ = latest_config(rows)
    # (model, dataset, metric, spec, budget) -> sample -> [values over seeds]
    values: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    retained: dict[tuple, list[float]] = defaultdict(list)
    order: dict[tuple[str, str], dict[str, list[str]]] = {}
    metric_order: list[str] = []
    for row in rows:
        md = (row["model"], row["dataset"])
        seen = order.setdefault(md, {"specs": [], "budgets": []})
        if row["spec"] not in seen["specs"]:
            seen["specs"].append(row["spec"])
        if row["budget"] not in seen["budgets"]:
            seen["budgets"].append(row["budget"])
        r = _retained(row)
        if r is not None:
            retained[(*md, row["spec"], row["budget"])].append(r)
        for name, value in (row.get("metrics") or {}).items():
            if name not in metric_order:
                metric_order.append(name)
            if value is not None and math.isfinite(value):
                values[(*md, name, row["spec"], row["budget"])][row["sample"]].append(float(value))
    wanted = metrics or metric_order
    unknown = [m for m in wanted if m not in metric_order]
    if unknown:
        raise ValueError(f"no recorded values for metric(s) {unknown}; recorded: {', '.join(metric_order) or '(none)'}")
    infos = {m: metric_info(m) for m in wanted}
    tables = []
    for (model, dataset), seen in order.items():
        specs = sorted(seen["specs"], key=lambda s: (s != UNPRUNED,))  # unpruned first, else suite order
        budgets = sorted(seen["budgets"], key=budget_order)
        for metric in wanted:
            table = MetricTable(model, dataset, metric, specs, budgets, info=infos[metric])
            for spec in specs:
                for budget in budgets:
                    per_sample = values.get((model, dataset, metric, spec, budget))
                    if not per_sample:
                        continue
                    means = {s: sum(v) / len(v) for s, v in per_sample.items()}
                    table.values[(spec, budget)] = means
                    kept = retained.get((model, dataset, spec, budget))
                    table.cells[(spec, budget)] = Cell(
                        estimate(list(means.values()), infos[metric].binary, level, resamples, seed),
                        sum(kept) / len(kept) if kept else None,
                    )
            if table.cells:
                tables.append(table)
    return tables


# -- console -----------------------------------------------------------------------------------------


def print_tables(tables: list[MetricTable], paired: list | None = None, console=None) -> None:
    """The main tables (and the paired differences, compactly) on the terminal, numbers as in the exports."""
    from rich.console import Console
    from rich.table import Table

    from .tables import display_main, display_paired_grid

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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


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
    from .figures import plotting_available, write_figures
    from .page import write_html
    from .paired import build_paired
    from .tables import write_tables

    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if not (isinstance(resamples, int) and resamples >= 1):
        raise ValueError(f"resamples must be an integer >= 1, got {resamples!r}")
    db_path, out_dir = Path(db_path), Path(out_dir)
    if not db_path.is_file():
        raise FileNotFoundError(f"no results database at {db_path}")
    with ResultsDB(db_path) as db:
        rows = db.rows({"suite": suite} if suite else None)
    if not rows:
        raise ValueError(f"results database {db_path} holds no rows" + (f" for suite {suite!r}" if suite else ""))
    current, superseded = latest_config(rows)
    tables = build_tables(current, metrics, level, resamples, seed)
    paired = build_paired(tables, baseline, level, resamples, seed)
    notes: list[str] = []
    if superseded:
        notes.append(f"{superseded} older rows recorded with other settings are not shown")
    unregistered = sorted({t.metric for t in tables if not t.info.registered})
    if unregistered:
        notes.append(f"no installed metric class for {', '.join(unregistered)}: shown under the id, as continuous, no direction")
    if not quiet:
        print_tables(tables, paired, console)
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

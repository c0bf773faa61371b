"""Turn a results database into tables (specs x budgets, with confidence intervals), PNG plots and HTML.

For each model, dataset and metric: one table whose rows are specs and columns budgets, each cell
the mean over samples with a bootstrap interval (seeds are averaged per sample first, so the
interval is over samples); one plot of the metric against the retained visual tokens, one line per
spec, the unpruned model as a dashed reference. The HTML file embeds the plots (base64), so it is
one self-contained file to mail or archive.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .db import ResultsDB
from .plan import UNPRUNED
from .stats import Estimate, mean_ci

__all__ = ["Cell", "MetricTable", "build_tables", "write_report", "budget_order"]


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

    @property
    def title(self) -> str:
        return f"{self.metric} - {self.model} on {self.dataset}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "metric": self.metric,
            "cells": [
                {"spec": s, "budget": b, "mean": c.estimate.mean, "low": c.estimate.low, "high": c.estimate.high,
                 "n": c.estimate.n, "retained": c.retained}
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
    rows: Iterable[dict[str, Any]], metrics: list[str] | None = None, level: float = 0.95, resamples: int = 2000
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
    tables = []
    for (model, dataset), seen in order.items():
        specs = sorted(seen["specs"], key=lambda s: (s != UNPRUNED,))  # unpruned first, else suite order
        budgets = sorted(seen["budgets"], key=budget_order)
        for metric in wanted:
            table = MetricTable(model, dataset, metric, specs, budgets)
            for spec in specs:
                for budget in budgets:
                    per_sample = values.get((model, dataset, metric, spec, budget))
                    if not per_sample:
                        continue
                    means = [sum(v) / len(v) for v in per_sample.values()]
                    kept = retained.get((model, dataset, spec, budget))
                    table.cells[(spec, budget)] = Cell(
                        mean_ci(means, level=level, resamples=resamples), sum(kept) / len(kept) if kept else None
                    )
            if table.cells:
                tables.append(table)
    return tables


# -- rendering ---------------------------------------------------------------------------------------


def _metric_info(name: str) -> tuple[str, str]:
    """(direction arrow, unit) from the registered metric class, if any."""
    try:
        from .registry import get_study_catalog

        entry = get_study_catalog().metrics.get(name)
    except Exception:  # noqa: BLE001 - a report must render even if a plugin that wrote rows is gone
        entry = None
    if entry is None:
        return "", ""
    arrow = {True: "higher is better", False: "lower is better"}.get(entry.cls.higher_is_better, "")
    return arrow, entry.cls.unit


def print_tables(tables: list[MetricTable], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    for t in tables:
        arrow, unit = _metric_info(t.metric)
        caption = ", ".join(x for x in (unit and f"unit: {unit}", arrow) if x)
        table = Table("spec", *t.budgets, title=t.title, caption=caption or None)
        for spec in t.specs:
            cells = [t.cells[(spec, b)].estimate.format() if (spec, b) in t.cells else "" for b in t.budgets]
            if any(cells):
                table.add_row(spec, *cells)
        console.print(table)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def plot_table(t: MetricTable, path: Path) -> Path:
    """Metric against retained visual tokens, one line (with its interval band) per spec."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    arrow, unit = _metric_info(t.metric)
    many = len(t.specs) > 8  # legend beside the axes, 20 distinct colours and varied markers
    fig, ax = plt.subplots(figsize=(9.6 if many else 6.4, 4.8 if many else 4.2), dpi=100)
    colours, markers = plt.get_cmap("tab20").colors, "os^vD<>pXh"
    drawn = 0
    for spec in t.specs:
        pts = [(c.retained, c.estimate) for (s, _), c in t.cells.items() if s == spec and c.estimate.n]
        if not pts:
            continue
        if spec == UNPRUNED:
            est = pts[0][1]
            ax.axhline(est.mean, color="black", linestyle="--", linewidth=1, label=f"{UNPRUNED}")
            if est.high > est.low:
                ax.axhspan(est.low, est.high, color="black", alpha=0.08)
            continue
        pts = sorted(((x if x is not None else float(i), e) for i, (x, e) in enumerate(pts)), key=lambda p: p[0])
        xs = [x for x, _ in pts]
        style = {"color": colours[drawn % len(colours)], "marker": markers[drawn % len(markers)]} if many else {"marker": "o"}
        drawn += 1
        line = ax.plot(xs, [e.mean for _, e in pts], label=spec, **style)[0]
        ax.fill_between(xs, [e.low for _, e in pts], [e.high for _, e in pts], color=line.get_color(), alpha=0.07 if many else 0.15)
    ax.set_xlabel("retained visual tokens")
    ax.set_ylabel(t.metric + (f" ({unit})" if unit else ""))
    ax.set_title(t.title + (f"  ({arrow})" if arrow else ""), fontsize=10)
    ax.grid(True, alpha=0.3)
    if many:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def _html_table(t: MetricTable) -> str:
    head = "".join(f"<th>{html.escape(b)}</th>" for b in t.budgets)
    body = []
    for spec in t.specs:
        cells = [t.cells[(spec, b)].estimate.format() if (spec, b) in t.cells else "" for b in t.budgets]
        if any(cells):
            body.append(f"<tr><th>{html.escape(spec)}</th>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr><th>spec</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_html(tables: list[MetricTable], plots: dict[int, Path], path: Path, info: dict[str, Any]) -> Path:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>tokcompress report</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child{text-align:left}"
        "img{max-width:100%}code{background:#f4f4f4}</style></head><body>",
        "<h1>tokcompress ablation report</h1>",
        f"<p>{html.escape(info['summary'])}</p>",
        "<p>Cells: mean over samples (seeds averaged per sample first) and its "
        f"{info['level']:.0%} percentile-bootstrap interval ({info['resamples']} resamples, seed 0).</p>",
        "<details><summary>provenance</summary><pre>" + html.escape(json.dumps(info["provenance"], indent=2)) + "</pre></details>",
    ]
    for i, t in enumerate(tables):
        arrow, unit = _metric_info(t.metric)
        note = ", ".join(x for x in (unit and f"unit: {unit}", arrow) if x)
        parts.append(f"<h2>{html.escape(t.title)}</h2>" + (f"<p><i>{html.escape(note)}</i></p>" if note else ""))
        parts.append(_html_table(t))
        if i in plots:
            data = base64.b64encode(plots[i].read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(t.title)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts))
    return path


def _provenance(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def distinct(col: str) -> list[Any]:
        seen: list[Any] = []
        for r in rows:
            if r.get(col) not in seen:
                seen.append(r.get(col))
        return seen

    return {"suites": distinct("suite"), "versions": distinct("versions"), "machines": distinct("machine")}


@dataclass
class ReportFiles:
    tables: list[MetricTable]
    html: Path
    plots: list[Path]
    summary: Path


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
) -> ReportFiles:
    """Print the tables and write ``summary.json``, ``plots/*.png`` and ``report.html`` under `out_dir`."""
    if not Path(db_path).is_file():
        raise FileNotFoundError(f"no results database at {db_path}")
    with ResultsDB(db_path, create=False) as db:
        rows = db.rows({"suite": suite} if suite else None)
    if not rows:
        raise ValueError(f"results database {db_path} holds no rows" + (f" for suite {suite!r}" if suite else ""))
    current, superseded = latest_config(rows)
    tables = build_tables(current, metrics, level, resamples)
    if not quiet:
        print_tables(tables, console)
        if superseded:
            print(f"note: {superseded} older rows recorded with other settings are not shown")
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs: dict[int, Path] = {}
    if plots:
        for i, t in enumerate(tables):
            pngs[i] = plot_table(t, out_dir / "plots" / f"{_slug(t.model)}__{_slug(t.dataset)}__{_slug(t.metric)}.png")
    info = {
        "summary": f"{len(current)} rows from {db_path}" + (f" (suite {suite})" if suite else "")
        + (f"; {superseded} older rows recorded with other settings are not shown" if superseded else ""),
        "level": level,
        "resamples": resamples,
        "provenance": _provenance(current),
    }
    summary = out_dir / "summary.json"
    summary.write_text(json.dumps({**info, "tables": [t.to_dict() for t in tables]}, indent=2, allow_nan=True))
    page = write_html(tables, pngs, out_dir / "report.html", info)
    return ReportFiles(tables, page, list(pngs.values()), summary)

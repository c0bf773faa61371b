"""Rows of a results database -> one table of cells per (model, dataset, metric): the report's data.

A cell is one spec at one budget: the mean over samples with its interval and n (seeds are averaged
per sample first, so the interval is over samples; `stats.estimate` picks Wilson or BCa from the
metric's declared value type), the mean retained visual tokens (the figures' x), and the per-sample
values that the paired comparisons pair up. Everything that renders a report reads these tables.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from .metricinfo import MetricInfo, metric_info
from .plan import UNPRUNED
from .stats import Estimate, estimate

__all__ = ["Cell", "MetricTable", "budget_order", "build_tables", "latest_config", "slug"]


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
        """``Grounding accuracy (grounding_acc) - model on dataset``: the id too, as the CSV files name it."""
        label = self.info.title if self.info.title == self.metric else f"{self.info.title} ({self.metric})"
        return f"{label} - {self.model} on {self.dataset}"

    @property
    def key(self) -> str:
        """File stem of its figure and tables: ``MODEL__DATASET__METRIC`` (slugs)."""
        return f"{self.group}__{slug(self.metric)}"

    @property
    def group(self) -> str:
        """``MODEL__DATASET``: the stem of the small-multiples figure of every metric of both."""
        return f"{slug(self.model)}__{slug(self.dataset)}"

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
    """Rows of the most recently recorded settings, and how many older rows were set aside.

    Rows are in insertion order. Changing generation length or metric parameters records new rows under
    a new ``config_hash`` (kept: the latest of each (model, dataset, sample)); changing a spec's definition
    under the same label (a preset gaining a parameter, an edited suite) records them under a new
    ``spec_hash`` (kept: the latest of each (model, dataset, spec label, budget)). The report shows the
    current rows only, so no cell mixes two versions of a spec or counts a sample twice."""
    rows = list(rows)
    config = {(r["model"], r["dataset"], r["sample"]): r["config_hash"] for r in rows}
    spec = {(r["model"], r["dataset"], r["spec"], r["budget"]): r["spec_hash"] for r in rows}
    kept = [r for r in rows if r["config_hash"] == config[(r["model"], r["dataset"], r["sample"])]
            and r["spec_hash"] == spec[(r["model"], r["dataset"], r["spec"], r["budget"])]]
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


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


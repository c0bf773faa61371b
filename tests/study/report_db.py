"""Fabricated results databases for report tests: per-sample values chosen by the test, one seed."""

from __future__ import annotations

from pathlib import Path

from tokcompress.study.db import ResultsDB


def write_db(path: Path, values: dict[tuple[str, str], dict[str, list[float | None]]], model: str = "m",
             dataset: str = "d", kept: dict[str, int] | None = None) -> Path:
    """values: {(spec, budget): {metric: [value of sample 0, sample 1, ...]}}; kept: budget -> visual_after."""
    kept = kept or {}
    with ResultsDB(path) as db:
        for (spec, budget), metrics in values.items():
            n = max(len(v) for v in metrics.values())
            for i in range(n):
                db.insert({"model": model, "dataset": dataset, "sample": f"s{i:03d}", "spec_hash": spec, "budget": budget,
                           "seed": 0, "config_hash": "c", "spec": spec, "suite": "unit",
                           "spec_json": None if spec == "unpruned" else {"extends": spec, "selector": {"name": "topk"}},
                           "metrics": {m: v[i] for m, v in metrics.items()},
                           "output": {"visual_after": kept.get(budget, 16)}, "versions": {"torch": "x"},
                           "machine": {"host": "h"}, "created": "t"})
    return path

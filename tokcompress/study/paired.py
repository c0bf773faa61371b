"""Paired comparisons: every spec against one baseline spec, on the samples both have.

Pairing by sample removes the between-sample variation that dominates an unpaired comparison (the same
hard question is hard for every pruner), which is the comparison a paper makes ("D2Pruner - FastV").
Each spec is compared at each budget with the baseline at the same budget, or, when the baseline is the
unpruned reference (budget ``all`` only), with that: what pruning costs. The p-values of one metric's table
form one family and are Holm-adjusted together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import unknown_name
from .aggregate import MetricTable
from .plan import UNPRUNED
from .stats import PairedResult, holm, paired_compare

__all__ = ["PairedRow", "PairedTable", "build_paired", "default_baseline"]


@dataclass(frozen=True)
class PairedRow:
    spec: str
    budget: str
    baseline_budget: str
    result: PairedResult
    p_holm: float

    def verdict(self, alpha: float, higher_is_better: bool | None) -> str:
        """``better`` / ``worse`` than the baseline when Holm-significant at `alpha`, else ``n.s.``;
        ``higher`` / ``lower`` for a metric with no direction."""
        if not self.p_holm < alpha or self.result.difference == 0:
            return "n.s."
        up = self.result.difference > 0
        if higher_is_better is None:
            return "higher" if up else "lower"
        return "better" if up == higher_is_better else "worse"


@dataclass
class PairedTable:
    table: MetricTable
    baseline: str
    level: float
    rows: list[PairedRow] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.table.key

    @property
    def alpha(self) -> float:
        return 1 - self.level

    def to_dict(self) -> dict[str, Any]:
        t = self.table
        return {
            "model": t.model, "dataset": t.dataset, "metric": t.metric, "baseline": self.baseline, "level": self.level,
            "rows": [
                {"spec": r.spec, "budget": r.budget, "baseline_budget": r.baseline_budget, "n": r.result.n,
                 "spec_mean": r.result.mean_a, "baseline_mean": r.result.mean_b, "difference": r.result.difference,
                 "low": r.result.low, "high": r.result.high, "interval": r.result.interval, "test": r.result.test,
                 "p": r.result.p, "p_holm": r.p_holm, "spec_only": r.result.a_only, "baseline_only": r.result.b_only,
                 "verdict": r.verdict(self.alpha, t.info.higher_is_better)}
                for r in self.rows
            ],
        }


def default_baseline(table: MetricTable) -> str | None:
    """The first pruned spec in suite order (the unpruned reference is compared only when asked for)."""
    return next((s for s in table.specs if s != UNPRUNED), None)


def build_paired(tables: list[MetricTable], baseline: str | None = None, level: float = 0.95,
                 resamples: int = 2000, seed: int = 0) -> list[PairedTable]:
    """One `PairedTable` per metric table that holds the baseline and at least one other spec."""
    if baseline is not None:
        known = {s for t in tables for s in t.specs}
        if baseline not in known:
            raise ValueError(unknown_name("baseline spec", baseline, known))
    out = []
    for t in tables:
        base = baseline or default_baseline(t)
        if base is None or base not in t.specs:
            continue
        base_budgets = [b for (s, b) in t.values if s == base]
        paired = PairedTable(t, base, level)
        for spec in t.specs:
            if spec == base:
                continue
            for budget in t.budgets:
                a = t.values.get((spec, budget))
                if a is None:
                    continue
                base_budget = budget if budget in base_budgets else ("all" if base_budgets == ["all"] else None)
                if base_budget is None:
                    continue
                b = t.values[(base, base_budget)]
                shared = [s for s in a if s in b]
                if not shared:
                    continue
                result = paired_compare([a[s] for s in shared], [b[s] for s in shared], t.info.binary, level,
                                        resamples, seed)
                paired.rows.append(PairedRow(spec, budget, base_budget, result, float("nan")))
        if paired.rows:
            adjusted = holm([r.result.p for r in paired.rows])
            paired.rows = [PairedRow(r.spec, r.budget, r.baseline_budget, r.result, p) for r, p in zip(paired.rows, adjusted)]
            out.append(paired)
    return out

"""Summary statistics for reports: mean and a percentile-bootstrap confidence interval over samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["Estimate", "mean_ci"]


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    n: int

    def format(self, digits: int = 3) -> str:
        if self.n == 0:
            return "-"
        if self.n == 1:
            return f"{self.mean:.{digits}g} (n={self.n})"
        return f"{self.mean:.{digits}g} [{self.low:.{digits}g}, {self.high:.{digits}g}]"


def mean_ci(values: Sequence[float], level: float = 0.95, resamples: int = 2000, seed: int = 0) -> Estimate:
    """Mean of `values` and its `level` percentile-bootstrap interval (deterministic given `seed`).

    The bootstrap makes no normality assumption, which matters for 0/1 agreement metrics and
    skewed KL values; with one value (or all equal) the interval collapses to the mean.
    """
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if x.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    mean = float(x.mean())
    if x.size == 1 or np.all(x == x[0]):
        return Estimate(mean, mean, mean, int(x.size))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Estimate(mean, float(low), float(high), int(x.size))

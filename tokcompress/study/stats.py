"""Intervals and paired tests for reports: what a paper states beside each number.

- One spec at one budget: the mean over samples and an interval. Binary metrics (0/1 per sample) get
  the Wilson score interval, which stays inside [0, 1] and does not collapse to ``0 [0, 0]`` at small
  n the way a percentile bootstrap of 0/1 values does; continuous metrics get scipy's BCa bootstrap,
  which corrects the percentile interval for bias and skew (KL values are skewed).
- Two specs on the same samples: the mean paired difference, an interval and a test. Binary: Newcombe's
  hybrid score interval for paired proportions and McNemar's exact test; continuous: a BCa bootstrap of
  the mean difference (resampling pairs) and the Wilcoxon signed-rank test.
- Holm's step-down adjustment over a family of such tests.

Every function is deterministic given its `seed`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps

__all__ = [
    "Estimate",
    "PairedResult",
    "estimate",
    "holm",
    "is_binary",
    "mcnemar_exact",
    "mean_ci",
    "newcombe_paired_ci",
    "paired_compare",
    "proportion_ci",
    "wilson_ci",
]


@dataclass(frozen=True)
class Estimate:
    """A mean over `n` samples and its interval; `method` names how the interval was made
    (``wilson``, ``bca``, ``percentile`` when BCa is undefined, ``constant`` when every value is equal,
    ``none`` for n <= 1)."""

    mean: float
    low: float
    high: float
    n: int
    method: str = "bca"

    def format(self, digits: int = 3) -> str:
        if self.n == 0:
            return "-"
        if self.n == 1:
            return f"{self.mean:.{digits}g} (n={self.n})"
        return f"{self.mean:.{digits}g} [{self.low:.{digits}g}, {self.high:.{digits}g}]"


def _check(level: float, resamples: int | None = None) -> None:
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if resamples is not None and not (isinstance(resamples, int) and resamples >= 1):
        raise ValueError(f"resamples must be an integer >= 1, got {resamples!r}")


def _array(values: Sequence[float], what: str = "values") -> np.ndarray:
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} must be finite, got {x[~np.isfinite(x)][:3].tolist()}")
    return x


def is_binary(values: Sequence[float] | np.ndarray) -> bool:
    """Every value is exactly 0 or 1 (a seed-averaged 0.5 is not)."""
    x = np.asarray(values, dtype=np.float64)
    return bool(np.all((x == 0) | (x == 1)))


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (scipy's `binomtest(...).proportion_ci`)."""
    _check(level)
    if not (0 <= successes <= n and n >= 1):
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got successes={successes}, n={n}")
    ci = sps.binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def proportion_ci(values: Sequence[float], level: float = 0.95) -> Estimate:
    """Share of ones among 0/1 `values` and its Wilson interval."""
    x = _array(values)
    if x.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, "none")
    if not is_binary(x):
        raise ValueError(f"proportion_ci needs 0/1 values, got {sorted(set(x.tolist()) - {0.0, 1.0})[:3]}")
    low, high = wilson_ci(int(x.sum()), int(x.size), level)
    return Estimate(float(x.mean()), low, high, int(x.size), "wilson")


def _bca(x: np.ndarray, level: float, resamples: int, seed: int) -> tuple[float, float, str]:
    """BCa interval of the mean of `x`; the percentile interval where BCa is undefined (NaN)."""
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns, then returns NaN, when BCa is undefined
        res = sps.bootstrap((x,), np.mean, n_resamples=resamples, confidence_level=level, method="BCa",
                            vectorized=True, rng=rng)
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if math.isfinite(low) and math.isfinite(high):
        return low, high, "bca"
    alpha = (1 - level) / 2
    low, high = np.quantile(res.bootstrap_distribution, [alpha, 1 - alpha])
    return float(low), float(high), "percentile"


def mean_ci(values: Sequence[float], level: float = 0.95, resamples: int = 2000, seed: int = 0) -> Estimate:
    """Mean of `values` and its `level` BCa bootstrap interval (deterministic given `seed`).

    One value or all equal: the interval collapses to the mean (method ``none`` / ``constant``), since
    resampling identical values says nothing about the spread.
    """
    _check(level, resamples)
    x = _array(values)
    if x.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, "none")
    mean = float(x.mean())
    if x.size == 1 or np.all(x == x[0]):
        return Estimate(mean, mean, mean, int(x.size), "none" if x.size == 1 else "constant")
    low, high, method = _bca(x, level, resamples, seed)
    # BCa quantiles of bootstrap means lie within the data; keep the point inside its interval
    return Estimate(mean, min(low, mean), max(high, mean), int(x.size), method)


def estimate(values: Sequence[float], binary: bool, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> Estimate:
    """Wilson for a binary metric whose values are all 0/1, else the BCa bootstrap.

    A binary metric averaged over several seeds per sample is no longer 0/1; it falls back to BCa.
    """
    x = _array(values)
    if binary and x.size and is_binary(x):
        _check(level, resamples)
        return proportion_ci(x, level)
    return mean_ci(x, level, resamples, seed)


# -- paired comparisons -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedResult:
    """Spec A against spec B on the same `n` samples: ``difference = mean(A) - mean(B)``.

    `interval` and `test` name the methods; `a_only` / `b_only` are McNemar's discordant counts
    (samples where only A, or only B, scored 1), None for continuous metrics.
    """

    n: int
    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    interval: str
    test: str
    p: float
    a_only: int | None = None
    b_only: int | None = None


def newcombe_paired_ci(both: int, a_only: int, b_only: int, neither: int, level: float = 0.95) -> tuple[float, float]:
    """Interval for p_A - p_B from paired 0/1 outcomes: Newcombe (1998), Stat Med 17:2635, method 10.

    Combines the Wilson intervals of the two marginal proportions with the correlation phi of the
    pairs. Hand-written because neither scipy nor numpy offers an interval for paired proportions;
    unlike a bootstrap of the differences it does not collapse to [0, 0] when no pair is discordant.
    """
    counts = {"both": both, "a_only": a_only, "b_only": b_only, "neither": neither}
    bad = {k: v for k, v in counts.items() if not (isinstance(v, (int, np.integer)) and v >= 0)}
    if bad:
        raise ValueError(f"paired counts must be integers >= 0, got {bad}")
    n = both + a_only + b_only + neither
    if n == 0:
        raise ValueError("paired counts are all zero: no pairs")
    pa, pb = (both + a_only) / n, (both + b_only) / n
    la, ua = wilson_ci(both + a_only, n, level)
    lb, ub = wilson_ci(both + b_only, n, level)
    margins = (both + a_only) * (b_only + neither) * (both + b_only) * (a_only + neither)
    phi = (both * neither - a_only * b_only) / math.sqrt(margins) if margins > 0 else 0.0
    diff = pa - pb
    delta = math.sqrt(max(0.0, (pa - la) ** 2 - 2 * phi * (pa - la) * (ub - pb) + (ub - pb) ** 2))
    eps = math.sqrt(max(0.0, (ua - pa) ** 2 - 2 * phi * (ua - pa) * (pb - lb) + (pb - lb) ** 2))
    return max(-1.0, diff - delta), min(1.0, diff + eps)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs against Binomial(a_only + b_only, 1/2)."""
    if a_only < 0 or b_only < 0:
        raise ValueError(f"discordant counts must be >= 0, got a_only={a_only}, b_only={b_only}")
    if a_only + b_only == 0:
        return 1.0
    return float(sps.binomtest(int(a_only), int(a_only + b_only), 0.5).pvalue)


def paired_compare(a: Sequence[float], b: Sequence[float], binary: bool, level: float = 0.95,
                   resamples: int = 2000, seed: int = 0) -> PairedResult:
    """Compare `a` with `b`, aligned by sample (``a[i]`` and ``b[i]`` are the same sample).

    Binary 0/1 values: Newcombe interval, exact McNemar test. Otherwise: BCa bootstrap of the mean
    difference (resampling pairs keeps each sample's two values together) and the Wilcoxon signed-rank
    test (zero differences dropped; all-zero differences give p = 1).
    """
    _check(level, resamples)
    x, y = _array(a, "a"), _array(b, "b")
    if x.size != y.size:
        raise ValueError(f"paired values need equal lengths, got {x.size} and {y.size}")
    if x.size == 0:
        raise ValueError("no shared samples to compare")
    n = int(x.size)
    if binary and is_binary(x) and is_binary(y):
        both = int(np.sum((x == 1) & (y == 1)))
        a_only = int(np.sum((x == 1) & (y == 0)))
        b_only = int(np.sum((x == 0) & (y == 1)))
        low, high = newcombe_paired_ci(both, a_only, b_only, n - both - a_only - b_only, level)
        return PairedResult(n, float(x.mean()), float(y.mean()), (a_only - b_only) / n, low, high, "newcombe",
                            "mcnemar-exact", mcnemar_exact(a_only, b_only), a_only, b_only)
    d = x - y
    diff = float(d.mean())
    if n == 1 or np.all(d == d[0]):
        low = high = diff
        interval = "none" if n == 1 else "constant"
    else:
        low, high, interval = _bca(d, level, resamples, seed)
        low, high = min(low, diff), max(high, diff)
    if np.all(d == 0):
        p = 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the normal approximation warns on tiny samples
            p = float(sps.wilcoxon(d).pvalue)
    return PairedResult(n, float(x.mean()), float(y.mean()), diff, low, high, interval, "wilcoxon", p)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given; NaN stays NaN).

    The k-th smallest of m p-values is multiplied by m - k + 1, then made non-decreasing and capped
    at 1. Hand-written: scipy only offers Benjamini-Hochberg/Yekutieli (`false_discovery_control`),
    and statsmodels would be a large dependency for six lines.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    if valid.size == 0:
        return out.tolist()
    if np.any((p[valid] < 0) | (p[valid] > 1)):
        raise ValueError(f"p-values must be in [0, 1], got {p[valid][(p[valid] < 0) | (p[valid] > 1)][:3].tolist()}")
    order = valid[np.argsort(p[valid], kind="stable")]
    m = order.size
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out.tolist()

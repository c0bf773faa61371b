"""Intervals and paired tests against hand-computed values and an independent BCa implementation."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from tokcompress.study.stats import (estimate, holm, mcnemar_exact, mean_ci, newcombe_paired_ci, paired_compare,
                                     proportion_ci, wilson_ci)

Z = NormalDist()


def wilson_by_hand(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    z = Z.inv_cdf((1 + level) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k, n", [(7, 8), (0, 8), (8, 8), (1, 1), (37, 100), (3, 40)])
def test_wilson_matches_the_formula(k, n):
    assert wilson_ci(k, n) == pytest.approx(wilson_by_hand(k, n), abs=1e-12)
    assert wilson_ci(k, n, 0.9) == pytest.approx(wilson_by_hand(k, n, 0.9), abs=1e-12)


def test_binary_cells_get_wilson_not_a_degenerate_bootstrap():
    # the case: 0/1 outcomes on n = 8 gave "1 [1, 1]" and "0 [0, 0]"
    ones, zeros = estimate([1.0] * 8, binary=True), estimate([0.0] * 8, binary=True)
    assert (ones.low, ones.high, ones.method) == (pytest.approx(0.6756, abs=1e-4), 1.0, "wilson")
    assert (zeros.low, zeros.high) == (0.0, pytest.approx(0.3244, abs=1e-4))
    seven = estimate([1, 1, 1, 1, 1, 1, 1, 0], binary=True)
    assert (seven.mean, seven.low, seven.high, seven.n) == (0.875, pytest.approx(0.52911, abs=1e-5),
                                                           pytest.approx(0.97758, abs=1e-5), 8)
    # seed-averaged values are no longer 0/1: the bootstrap takes over
    assert estimate([1.0, 0.5, 0.0, 1.0], binary=True).method == "bca"
    # a continuous metric with 0/1 values is not a proportion
    assert estimate([0.0, 1.0, 1.0], binary=False).method == "bca"


def bca_by_hand(x: np.ndarray, level: float, resamples: int, seed: int) -> tuple[list[float], list[float]]:
    """Efron & Tibshirani (1993) ch. 14: bias correction z0 from the bootstrap, acceleration from the jackknife."""
    rng = np.random.default_rng(seed)
    boot = x[rng.integers(0, x.size, (resamples, x.size))].mean(axis=1)
    z0 = Z.inv_cdf(float((boot < x.mean()).mean()))
    jack = np.array([np.delete(x, i).mean() for i in range(x.size)])
    d = jack.mean() - jack
    a = (d ** 3).sum() / (6 * (d ** 2).sum() ** 1.5)
    qs = [(1 - level) / 2, (1 + level) / 2]
    bca = [float(np.quantile(boot, Z.cdf(z0 + (z0 + Z.inv_cdf(q)) / (1 - a * (z0 + Z.inv_cdf(q)))))) for q in qs]
    return bca, np.quantile(boot, qs).tolist()


def test_bca_matches_an_independent_implementation_and_not_the_percentile_interval():
    x = np.array([1.001, 1.431, 0.72, 0.343, 0.579, 0.304, 1.075, 4.994, 0.554, 0.475, 1.8, 1.535, 1.135, 0.327,
                  0.966, 2.303, 0.199, 0.577, 0.102, 0.213])  # right-skewed (log-normal)
    (low, high), (p_low, p_high) = bca_by_hand(x, 0.95, 200_000, seed=1)
    est = mean_ci(x, resamples=20_000)
    assert est.method == "bca" and est.mean == pytest.approx(x.mean())
    assert est.low == pytest.approx(low, abs=0.03) and est.high == pytest.approx(high, abs=0.04)
    # the percentile interval is visibly lower for right-skewed data; BCa moves both ends up
    assert p_low < low - 0.05 and p_high < high - 0.15


def test_mean_ci_is_deterministic_and_handles_tiny_samples():
    assert mean_ci([0.2, 0.4, 0.9], seed=3) == mean_ci([0.2, 0.4, 0.9], seed=3)
    assert mean_ci([0.2, 0.4, 0.9], seed=3) != mean_ci([0.2, 0.4, 0.9], seed=4)
    assert mean_ci([5.0]).method == "none" and mean_ci([2.0, 2.0]).method == "constant"
    assert mean_ci([]).n == 0 and math.isnan(mean_ci([]).mean)


def test_bad_input_names_the_parameter_and_value():
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\), got 95"):
        mean_ci([1.0, 2.0], level=95)
    with pytest.raises(ValueError, match="resamples must be an integer >= 1, got 0"):
        mean_ci([1.0, 2.0], resamples=0)
    with pytest.raises(ValueError, match=r"values must be finite, got \[nan\]"):
        mean_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match=r"proportion_ci needs 0/1 values, got \[0.5\]"):
        proportion_ci([0.0, 0.5])
    with pytest.raises(ValueError, match="paired values need equal lengths, got 2 and 3"):
        paired_compare([1, 0], [1, 0, 1], binary=True)
    with pytest.raises(ValueError, match=r"paired counts must be integers >= 0, got \{'b_only': -1\}"):
        newcombe_paired_ci(1, 2, -1, 3)


def test_newcombe_interval_by_hand():
    # pairs: both 1: 10, only A: 15, only B: 5, neither: 20 (n = 50)
    la, ua = wilson_by_hand(25, 50)
    lb, ub = wilson_by_hand(15, 50)
    pa, pb = 0.5, 0.3
    phi = (10 * 20 - 15 * 5) / math.sqrt(25 * 25 * 15 * 35)
    low = (pa - pb) - math.sqrt((pa - la) ** 2 - 2 * phi * (pa - la) * (ub - pb) + (ub - pb) ** 2)
    high = (pa - pb) + math.sqrt((ua - pa) ** 2 - 2 * phi * (ua - pa) * (pb - lb) + (pb - lb) ** 2)
    assert newcombe_paired_ci(10, 15, 5, 20) == pytest.approx((low, high), abs=1e-12)
    assert newcombe_paired_ci(10, 15, 5, 20) == pytest.approx((0.0305, 0.3528), abs=1e-4)
    # no discordant pair at all: a symmetric interval around 0, not [0, 0]
    low, high = newcombe_paired_ci(8, 0, 0, 0)
    assert low == pytest.approx(-high) and high == pytest.approx(wilson_by_hand(0, 8)[1])


def test_mcnemar_exact_by_hand():
    # 8 discordant pairs all one way: 2 * 0.5^8
    assert mcnemar_exact(8, 0) == pytest.approx(2 / 256)
    # 6 vs 2: 2 * P(X <= 2), X ~ Bin(8, 1/2) = 2 * (1 + 8 + 28) / 256
    assert mcnemar_exact(2, 6) == pytest.approx(2 * 37 / 256)
    assert mcnemar_exact(0, 0) == 1.0


def test_paired_compare_binary_and_continuous():
    a = [1, 1, 1, 1, 1, 1, 1, 1, 0, 1]
    b = [0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    r = paired_compare(a, b, binary=True)
    assert (r.n, r.difference, r.a_only, r.b_only, r.test, r.interval) == (10, 0.8, 8, 0, "mcnemar-exact", "newcombe")
    assert r.p == pytest.approx(2 / 256) and r.low > 0
    # continuous: a constant shift of 0.5 plus small noise is found; the Wilcoxon p is exact for n = 10
    rng = np.random.default_rng(0)
    base = rng.normal(size=10)
    c = paired_compare(base + 0.5 + rng.normal(scale=0.05, size=10), base, binary=False)
    assert c.test == "wilcoxon" and c.p == pytest.approx(2 / 1024) and c.low > 0.4 and c.high < 0.6
    same = paired_compare(base, base, binary=False)
    assert (same.difference, same.p, same.interval) == (0.0, 1.0, "constant")


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    out = holm([0.01, float("nan")])
    assert out[0] == pytest.approx(0.01) and math.isnan(out[1])
    with pytest.raises(ValueError, match=r"p-values must be in \[0, 1\], got \[1.5\]"):
        holm([0.2, 1.5])

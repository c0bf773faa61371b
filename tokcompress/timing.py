"""Honest wall-clock comparisons: warm-up, paired and interleaved runs, ratios per pair.

On a shared or throttled machine the load drifts during a measurement. Timing the configurations
one after the other and dividing their medians attributes that drift to whichever ran last. Here
every round runs every configuration once, in orders balanced over the rounds, and the speed-up
of a configuration is the median of its per-round ratios to the reference run of the same round,
reported with the spread of those ratios and the number of CPU threads. The demo, ``tokcompress
generate`` and the study tooling's ``prefill_ms`` / ``prefill_speedup`` all time through here.
(`torch.utils.benchmark.Timer` measures one statement well, but cannot pair rounds across
configurations that each need a pruner attached; its synchronisation rule is the one used here.)
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Mapping

import torch

from .errors import InputError

__all__ = ["Ratio", "Comparison", "balanced_orders", "time_paired"]


@dataclass(frozen=True)
class Ratio:
    """Median of per-round ratios, with the lowest and highest (the spread) and the number of rounds."""

    median: float
    low: float
    high: float
    n: int

    def format(self) -> str:
        return f"{self.median:.2f}x [{self.low:.2f}-{self.high:.2f}]"


@dataclass(frozen=True)
class Comparison:
    """Milliseconds per round for every configuration, all measured in the same rounds."""

    reference: str
    ms: dict[str, list[float]]
    threads: int

    def median_ms(self, name: str) -> float:
        return statistics.median(self.ms[name])

    def quartiles(self, name: str, of: Callable[[float, float], float]) -> tuple[float, float, float]:
        """Lower quartile, median and upper quartile over rounds of ``of(reference ms, name's ms)``
        (e.g. ``lambda r, c: c - r`` for the added milliseconds, ``lambda r, c: c / r`` for a cost ratio)."""
        values = [of(r, c) for r, c in zip(self.ms[self.reference], self.ms[name])]
        if len(values) == 1:
            return values[0], values[0], values[0]
        q1, median, q3 = statistics.quantiles(values, n=4)
        return q1, median, q3

    def speedup(self, name: str) -> Ratio:
        """Reference time over `name`'s time, round by round."""
        ratios = [r / c for r, c in zip(self.ms[self.reference], self.ms[name])]
        return Ratio(statistics.median(ratios), min(ratios), max(ratios), len(ratios))


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def balanced_orders(k: int) -> list[list[int]]:
    """Orders of ``range(k)`` (a Williams design) in which each item takes every position equally often
    and follows every other item equally often: k orders for an even k, 2k for an odd one. A plain
    rotation does the first but not the second (with four items, each follows the same one in three
    rounds out of four)."""
    offsets = [0]
    for step in range(1, k):
        offsets.append((step + 1) // 2 if step % 2 else k - step // 2)
    orders = [[(r + o) % k for o in offsets] for r in range(k)]
    return orders if k % 2 == 0 or k == 1 else orders + [order[::-1] for order in orders]


def time_paired(runs: Mapping[str, Callable[[], Any]], reference: str, *, rounds: int = 7, warmup: int = 1,
                around: Mapping[str, Callable[[], ContextManager]] | None = None,
                clock: Callable[[], float] = time.perf_counter, sync: Callable[[], None] = _sync) -> Comparison:
    """Time every callable of `runs` once per round for `rounds` rounds, after `warmup` untimed rounds.

    `around[name]()` is a context entered before and left after each run of `name`, outside the timed
    span (e.g. attaching a pruner). The rounds cycle through the orders of `balanced_orders`: every
    configuration runs at every position and right after every other one equally often, so neither a
    place in the round nor what ran just before (what it left in the caches) favours any of them.
    `clock` and `sync` are injectable (tests use a fake clock).
    """
    if reference not in runs:
        raise InputError(f"time_paired: reference {reference!r} is not one of the runs {sorted(runs)}")
    if rounds < 1 or warmup < 0:
        raise InputError(f"time_paired: rounds must be >= 1 and warmup >= 0, got {rounds}, {warmup}")
    around = around or {}
    names = list(runs)
    orders = balanced_orders(len(names))
    ms: dict[str, list[float]] = {name: [] for name in names}
    for r in range(warmup + rounds):
        for name in (names[i] for i in orders[r % len(orders)]):
            with around.get(name, contextlib.nullcontext)():
                sync()
                start = clock()
                runs[name]()
                sync()
                elapsed = (clock() - start) * 1e3
            if r >= warmup:
                ms[name].append(elapsed)
    return Comparison(reference, ms, torch.get_num_threads())

"""`time_paired`: rounds interleave every configuration in balanced orders, and speed-ups are per-round ratios."""

from __future__ import annotations

import pytest

from tokcompress.errors import InputError
from collections import Counter

from hypothesis import given, strategies as st

from tokcompress.timing import balanced_orders, time_paired


class FakeClock:
    """Advances by the duration the running configuration declares; records the call order."""

    def __init__(self) -> None:
        self.now, self.order = 0.0, []

    def __call__(self) -> float:
        return self.now

    def run(self, name: str, seconds):
        def call():
            self.order.append(name)
            self.now += seconds() if callable(seconds) else seconds
        return call


def test_rounds_interleave_and_ratios_are_paired():
    clock = FakeClock()
    # seconds per run: warm-up, round 1, round 2 (the machine is 4x slower in round 1: pairing cancels it)
    durations = {"none": iter([9.0, 4.0, 1.0]), "a": iter([9.0, 1.0, 0.5]), "b": iter([9.0, 2.0, 2.0])}
    runs = {name: clock.run(name, lambda it=it: next(it)) for name, it in durations.items()}
    result = time_paired(runs, "none", rounds=2, warmup=1, clock=clock, sync=lambda: None)
    # warm-up round in order none, a, b; then a, b, none; then b, none, a (balanced_orders(3))
    assert clock.order == ["none", "a", "b", "a", "b", "none", "b", "none", "a"]
    assert result.ms == {"none": [4000.0, 1000.0], "a": [1000.0, 500.0], "b": [2000.0, 2000.0]}
    ratio = result.speedup("a")  # per round: 4000/1000 = 4, 1000/500 = 2
    assert (ratio.median, ratio.low, ratio.high, ratio.n) == (3.0, 2.0, 4.0, 2)
    assert result.speedup("none").median == 1.0 and result.median_ms("b") == 2000.0


def test_context_around_each_run_is_outside_the_timed_span():
    import contextlib

    clock = FakeClock()
    entered = []

    @contextlib.contextmanager
    def attach():
        entered.append(clock.now)
        clock.now += 100.0  # expensive set-up: must not be timed
        yield
        clock.now += 100.0

    result = time_paired({"none": clock.run("none", 1.0), "p": clock.run("p", 0.5)}, "none", rounds=3, warmup=0,
                         around={"p": attach}, clock=clock, sync=lambda: None)
    assert result.ms["p"] == [500.0] * 3 and len(entered) == 3
    assert result.speedup("p").median == 2.0


def test_bad_arguments_are_named():
    with pytest.raises(InputError, match="reference 'x' is not one of the runs"):
        time_paired({"a": lambda: None}, "x")
    with pytest.raises(InputError, match="rounds must be >= 1"):
        time_paired({"a": lambda: None}, "a", rounds=0)


def test_quartiles_are_taken_over_the_per_round_values():
    from tokcompress.timing import Comparison

    c = Comparison("a", {"a": [10.0, 10.0, 20.0, 10.0, 10.0], "b": [11.0, 12.0, 21.0, 13.0, 30.0]}, threads=1)
    q1, mid, q3 = c.quartiles("b", lambda ref, x: x - ref)  # per round: 1, 2, 1, 3, 20
    assert (q1, mid, q3) == (1.0, 2.0, 11.5)  # statistics.quantiles, exclusive method


@given(st.integers(1, 12))
def test_balanced_orders_place_and_precede_every_configuration_equally_often(k):
    orders = balanced_orders(k)
    assert all(sorted(order) == list(range(k)) for order in orders)
    assert len(orders) == (k if k % 2 == 0 or k == 1 else 2 * k)
    positions = Counter((x, i) for order in orders for i, x in enumerate(order))
    follows = Counter(pair for order in orders for pair in zip(order, order[1:]))
    assert len(positions) == k * k and len(set(positions.values())) == 1
    assert len(follows) == k * (k - 1) and len(set(follows.values())) <= 1


def test_four_configurations_each_follow_every_other_once_in_four_rounds():
    clock = FakeClock()
    runs = {name: clock.run(name, 1.0) for name in "abcd"}
    time_paired(runs, "a", rounds=4, warmup=0, clock=clock, sync=lambda: None)
    rounds = ["".join(clock.order[i:i + 4]) for i in range(0, 16, 4)]
    assert rounds == ["abdc", "bcad", "cdba", "dacb"]
    assert len({pair for r in rounds for pair in zip(r, r[1:])}) == 12  # a plain rotation gives 4

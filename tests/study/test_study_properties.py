"""Property tests of the study's small pure functions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tokcompress.study.metrics import box_iou, parse_box
from tokcompress.study.plan import budget_of
from tokcompress.study.stats import mean_ci
from tokcompress.study.suite import Budget

ratios = st.floats(min_value=1e-6, max_value=1.0, allow_nan=False, exclude_min=False)
coords = st.integers(min_value=0, max_value=2000)


@given(st.one_of(st.integers(min_value=1, max_value=10**6).map(lambda k: Budget(keep=k)), ratios.map(lambda r: Budget(ratio=r))))
def test_budget_label_round_trips_exactly(budget):
    # the label is part of the results key: distinct budgets must never share one
    assert budget_of(budget.label) == budget


@given(st.lists(st.floats(min_value=-1e3, max_value=1e3, allow_nan=False), min_size=1, max_size=30))
@settings(max_examples=50, deadline=None)
def test_bootstrap_interval_brackets_the_mean_within_the_data(values):
    est = mean_ci(values, resamples=200)
    slack = 1e-9 * (1 + max(abs(v) for v in values))
    assert min(values) - slack <= est.low <= est.mean + slack and est.mean - slack <= est.high <= max(values) + slack
    assert est.n == len(values)


@given(coords, coords, coords, coords, st.sampled_from(["[{}, {}, {}, {}]", "({},{}),({},{})", "<box>[[{}, {}, {}, {}]]</box>",
                                                         '{{"bbox_2d": [{}, {}, {}, {}]}}', "x {} {} {} {}"]))
def test_parse_box_reads_every_output_style(x1, y1, x2, y2, style):
    assert parse_box("The answer: " + style.format(x1, y1, x2, y2)) == (x1, y1, x2, y2)


@given(coords, coords, st.integers(1, 500), st.integers(1, 500), coords, coords, st.integers(1, 500), st.integers(1, 500))
def test_iou_is_symmetric_bounded_and_one_on_itself(ax, ay, aw, ah, bx, by, bw, bh):
    a, b = (ax, ay, ax + aw, ay + ah), (bx, by, bx + bw, by + bh)
    assert 0.0 <= box_iou(a, b) == box_iou(b, a) <= 1.0
    assert box_iou(a, a) == 1.0

"""Scoring of generated answers: box parsing, IoU, the per-task correctness rule."""

from __future__ import annotations

import pytest

from tokcompress_grounding.data import make_sample
from tokcompress_grounding.evaluate import iou, is_correct, parse_box


def test_parse_box_takes_the_first_four_integers():
    assert parse_box("12 34 56 78") == (12, 34, 56, 78)
    assert parse_box("12 34 56 78 90") == (12, 34, 56, 78)
    assert parse_box("12 34 56") is None and parse_box("two") is None


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
        ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),
        ((0, 0, 10, 10), (10, 10, 20, 20), 0.0),
        ((0, 0, 10, 10), (2, 2, 8, 8), 36 / 100),
        ((5, 5, 5, 9), (0, 0, 10, 10), 0.0),  # degenerate
    ],
)
def test_iou_hand_worked(a, b, expected):
    assert iou(a, b) == pytest.approx(expected)


def test_grounding_is_correct_from_iou_one_half():
    s = make_sample(0, "test", 0)
    x1, y1, x2, y2 = s.box
    assert is_correct(s, s.answer)
    side = x2 - x1
    shift = side // 3  # overlap (side - shift) / (side + shift) >= 0.5
    assert is_correct(s, f"{x1 + shift} {y1} {x2 + shift} {y2}")
    assert not is_correct(s, f"{x1 + side // 2 + 1} {y1} {x2 + side // 2 + 1} {y2}")
    assert not is_correct(s, "two")


def test_counting_needs_the_exact_word():
    s = make_sample(0, "test", 1)
    assert is_correct(s, s.answer) and is_correct(s, f" {s.answer.upper()} ")
    wrong = "four" if s.answer != "four" else "three"
    assert not is_correct(s, wrong) and not is_correct(s, s.answer + " two")

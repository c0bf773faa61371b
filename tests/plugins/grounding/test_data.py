"""The scene generator: deterministic, boxes exact, questions answerable, splits readable by the study tooling."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokcompress_grounding import data
from tokcompress_grounding.data import COUNT_WORDS, IMAGE_SIZE, PLURALS, SHAPES, _shape_mask, make_sample


def _pixels(sample) -> bytes:
    return np.asarray(sample.image).tobytes()


def test_same_seed_split_index_gives_the_same_sample():
    a, b = make_sample(3, "train", 17), make_sample(3, "train", 17)
    assert (a.prompt, a.answer, a.box, a.scene) == (b.prompt, b.answer, b.box, b.scene)
    assert _pixels(a) == _pixels(b)


def test_seed_split_and_index_each_change_the_sample():
    base = make_sample(0, "train", 4)
    for other in (make_sample(1, "train", 4), make_sample(0, "val", 4), make_sample(0, "train", 6)):
        assert _pixels(other) != _pixels(base)


def test_tasks_alternate_by_index_and_can_be_forced():
    assert [make_sample(0, "test", i).task for i in range(4)] == ["grounding", "counting"] * 2
    assert make_sample(0, "test", 0, task="counting").task == "counting"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"seed": 0, "split": "dev", "index": 0}, "split must be one of"),
        ({"seed": 0, "split": "train", "index": -1}, "index must be >= 0"),
        ({"seed": 0, "split": "train", "index": 0, "task": "vqa"}, "task must be one of"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_sample(**kwargs)


def test_format_box_is_four_space_separated_integers():
    assert data.format_box((3, 40, 17, 54)) == "3 40 17 54"


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(SHAPES), side=st.integers(11, 32), extra=st.integers(0, 1), x=st.integers(0, 60), y=st.integers(0, 60))
def test_every_shape_fills_exactly_its_box(kind, side, extra, x, y):
    box = (x, y, x + side, y + side + extra)  # cell rounding makes some boxes a pixel taller than wide
    ys, xs = np.nonzero(_shape_mask(kind, box))
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == box


def test_square_mask_is_the_box_and_circle_misses_the_corners():
    square = _shape_mask("square", (10, 20, 22, 32))
    assert square.sum() == 12 * 12
    circle = _shape_mask("circle", (10, 20, 22, 32))
    assert not circle[20, 10] and not circle[31, 21] and circle[26, 16]


@settings(max_examples=40, deadline=None)
@given(index=st.integers(0, 10_000))
def test_scenes_are_answerable(index):
    s = make_sample(0, "train", index)
    edges = {data.cell_edge(k): k for k in range(data.GRID + 1)}
    cells = [tuple(edges[v] for v in sh.box) for sh in s.scene.shapes]  # every edge on a cell boundary
    assert 3 <= len(cells) <= data.MAX_OBJECTS
    for sh, (c1, r1, c2, r2) in zip(s.scene.shapes, cells):
        assert max(sh.box) <= IMAGE_SIZE - 1 and c2 - c1 == r2 - r1
        assert c2 - c1 in range(data.SIZES[sh.size][0], data.SIZES[sh.size][1] + 1)
    for i, a in enumerate(cells):
        for b in cells[i + 1 :]:  # at least one empty cell between two shapes
            assert a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]
    if s.task == "grounding":
        matches = [sh for sh in s.scene.shapes if f"the {sh.size} {sh.colour} {sh.kind}?" in s.prompt]
        assert len(matches) == 1 and matches[0].box == s.box
        assert s.answer == " ".join(map(str, s.box))
    else:
        count = sum(f"many {sh.colour} {PLURALS[sh.kind]}?" in s.prompt for sh in s.scene.shapes)
        assert s.answer == COUNT_WORDS[count] and s.box is None


def test_target_pixels_carry_the_target_colour():
    s = make_sample(0, "test", 0)
    target = next(sh for sh in s.scene.shapes if sh.box == s.box)
    x1, y1, x2, y2 = s.box
    patch = np.asarray(s.image)[y1:y2, x1:x2].astype(int)
    centre = patch[(y2 - y1) - 1, (x2 - x1) // 2]  # bottom-centre pixel lies inside every shape kind
    assert np.abs(centre - np.array(data.COLOURS[target.colour])).max() <= 14


def test_write_split_is_read_by_the_study_dataset_loader(tmp_path):
    from tokcompress.study.datasets import read_jsonl

    path = data.write_split(tmp_path, "test", 4, seed=0)
    samples = read_jsonl(path)
    assert [s.id for s in samples] == [f"test-{i:06d}" for i in range(4)]
    ref = make_sample(0, "test", 0)
    assert samples[0].box == tuple(float(v) for v in ref.box) and samples[0].answer is None
    assert samples[1].answer == (make_sample(0, "test", 1).answer,) and samples[1].box is None
    assert samples[0].image_size() == (IMAGE_SIZE, IMAGE_SIZE)
    assert np.asarray(samples[0].load_image()).tobytes() == _pixels(ref)  # PNG is lossless
    meta = json.loads(path.read_text().splitlines()[0])["meta"]
    assert meta == {"task": "grounding", "target": ref.answer, "seed": 0, "index": 0}


def test_group_image_and_scene_are_the_samples():
    image, scene, questions = data.make_group(0, "test", 4, 2, 1)
    assert scene == make_sample(0, "test", 4).scene and np.asarray(image).tobytes() == _pixels(make_sample(0, "test", 4))
    assert [q.task for q in questions] == ["grounding", "grounding", "counting"]


def test_cell_edges_split_the_image_into_16_near_equal_cells():
    edges = [data.cell_edge(k) for k in range(data.GRID + 1)]
    assert edges[:5] == [0, 6, 13, 19, 25] and edges[8] == 50 and edges[-1] == IMAGE_SIZE
    assert {b - a for a, b in zip(edges, edges[1:])} == {6, 7}


def test_counting_questions_in_a_group_ask_distinct_types_with_true_counts():
    _, scene, questions = data.make_group(0, "train", 11, 0, 5)
    prompts = [q.prompt for q in questions]
    assert len(set(prompts)) == 5
    for q in questions:
        n = sum(f"many {sh.colour} {PLURALS[sh.kind]}?" in q.prompt for sh in scene.shapes)
        assert q.answer == COUNT_WORDS[n]


def test_generated_dataset_writes_a_split_once_and_matches_the_generator(tmp_path):
    """``grounding-generated``: the first `count` samples of a split, as `make_sample` draws them, cached."""
    from tokcompress.study.registry import get_study_catalog
    from tokcompress_grounding.data import make_sample
    from tokcompress_grounding.plugin import GroundingGeneratedDataset

    assert get_study_catalog().datasets["grounding-generated"].cls is GroundingGeneratedDataset
    ds = GroundingGeneratedDataset(GroundingGeneratedDataset.Params(split="val", count=4, cache=str(tmp_path)))
    samples = ds.load(tmp_path)
    assert ds.label() == "grounding-val4"
    assert [s.id for s in samples] == [f"val-{i:06d}" for i in range(4)]
    for i, s in enumerate(samples):
        ref = make_sample(0, "val", i)
        assert s.prompt == ref.prompt
        assert (s.box == tuple(float(v) for v in ref.box)) if ref.task == "grounding" else (s.answer == (ref.answer,))
        assert s.load_image().tobytes() == ref.image.convert("RGB").tobytes()  # PNG is lossless
    written = (tmp_path / "seed0-val4" / "val.jsonl").stat().st_mtime_ns
    ds.load(tmp_path)
    assert (tmp_path / "seed0-val4" / "val.jsonl").stat().st_mtime_ns == written  # not rewritten

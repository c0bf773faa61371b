"""Metrics on hand-worked outcomes, dataset loading, and metric/dataset plugins from third parties."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tokcompress.errors import InputError
from tokcompress.study.datasets import BUNDLED_JSONL, Sample, SamplesDataset, read_jsonl
from tokcompress.study.metricinfo import MetricInfo, metric_info
from tokcompress.study.metrics import (BUILTIN_METRICS, BoxIoU, ExactMatch, FirstTokenAgreement, GroundingAccuracy, Metric,
                                       NextTokenKL, Outcome, SequenceAgreement, box_iou, normalize_answer, parse_box)
from tokcompress.study.registry import get_study_catalog

IMAGE = BUNDLED_JSONL.parent / "samples" / "box-circle.png"  # 64 x 64


def outcome(probs, tokens=(5, 6), text="", **kw) -> Outcome:
    logp = torch.log(torch.tensor(probs, dtype=torch.float32))
    return Outcome(logp, tuple(tokens), text, kw.get("prefill_s", 0.01), 16, kw.get("after", 16))


def sample(answer=None, box=None) -> Sample:
    return Sample("s", IMAGE, "q", answer, box)


def test_kl_matches_the_hand_computed_value():
    ref, run = outcome([0.5, 0.25, 0.25]), outcome([0.25, 0.5, 0.25])
    expected = 0.5 * math.log(0.5 / 0.25) + 0.25 * math.log(0.25 / 0.5)  # = 0.25 ln 2
    assert NextTokenKL()(run, ref, sample()) == pytest.approx(expected, abs=1e-6)
    assert NextTokenKL()(ref, ref, sample()) == 0.0
    reverse = NextTokenKL(NextTokenKL.Params(direction="pruned||reference"))
    ref2, run2 = outcome([0.7, 0.2, 0.1]), outcome([0.4, 0.4, 0.2])
    assert reverse(run2, ref2, sample()) == pytest.approx(NextTokenKL()(ref2, run2, sample()), abs=1e-6)
    # a token the reference never emits contributes nothing
    assert NextTokenKL()(outcome([0.5, 0.5, 1e-30]), outcome([0.5, 0.5, 0.0]), sample()) == pytest.approx(0, abs=1e-6)


def test_agreement_metrics():
    ref = outcome([0.1, 0.7, 0.2], tokens=(1, 4, 4))
    assert FirstTokenAgreement()(outcome([0.2, 0.5, 0.3], tokens=(1, 9)), ref, sample()) == 1.0
    assert FirstTokenAgreement()(outcome([0.2, 0.3, 0.5], tokens=(2,)), ref, sample()) == 0.0
    assert SequenceAgreement()(outcome([1, 0, 0], tokens=(1, 4, 4)), ref, sample()) == 1.0
    assert SequenceAgreement()(outcome([1, 0, 0], tokens=(1, 4)), ref, sample()) == 0.0


def test_exact_match_normalisation():
    assert normalize_answer("  The Circle. ") == "circle"
    assert ExactMatch()(outcome([1.0], text="A circle!"), outcome([1.0]), sample(answer=("circle",))) == 1.0
    assert ExactMatch()(outcome([1.0], text="circles"), outcome([1.0]), sample(answer=("circle",))) == 0.0
    assert ExactMatch()(outcome([1.0], text="Yellow"), outcome([1.0]), sample(answer=("gold", "yellow"))) == 1.0
    strict = ExactMatch(ExactMatch.Params(lowercase=False, strip_punctuation=False, strip_articles=False))
    assert strict(outcome([1.0], text="Circle"), outcome([1.0]), sample(answer=("circle",))) == 0.0
    # unlabelled sample: not applicable, not wrong
    assert ExactMatch()(outcome([1.0], text="circle"), outcome([1.0]), sample()) is None


@pytest.mark.parametrize(
    "text, box",
    [
        ("[10, 20, 30, 40]", (10, 20, 30, 40)),
        ("The box is (10,20),(30,40).", (10, 20, 30, 40)),
        ("<box>[[10.5, 20, 30, 40.25]]</box>", (10.5, 20, 30, 40.25)),
        ('{"bbox_2d": [10, 20, 30, 40], "label": "cat 2"}', (10, 20, 30, 40)),
        ("x1=3 y1=4 x2=10 y2=12", (3, 4, 10, 12)),
        ("12 34 56 78", (12, 34, 56, 78)),
        ("no box 1 2 3", None),
    ],
)
def test_parse_box(text, box):
    assert parse_box(text) == box


def test_iou_and_grounding_accuracy():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert box_iou((10, 10, 0, 0), (0, 0, 10, 10)) == 0.0  # reversed corners: degenerate
    gt = sample(box=(0.0, 0.0, 32.0, 32.0))
    acc, iou = GroundingAccuracy(), BoxIoU()
    assert acc(outcome([1.0], text="[0, 0, 32, 20]"), outcome([1.0]), gt) == 1.0  # IoU 0.625
    assert acc(outcome([1.0], text="[0, 0, 32, 15]"), outcome([1.0]), gt) == 0.0  # IoU 0.469
    assert iou(outcome([1.0], text="[0, 0, 32, 15]"), outcome([1.0]), gt) == pytest.approx(15 / 32)
    assert acc(outcome([1.0], text="no idea"), outcome([1.0]), gt) == 0.0
    # the image is 64 x 64: [0, 1] and [0, 1000] outputs are scaled to pixels
    unit = GroundingAccuracy(GroundingAccuracy.Params(coordinates="unit"))
    thousand = GroundingAccuracy(GroundingAccuracy.Params(coordinates="thousand", threshold=0.99))
    assert unit(outcome([1.0], text="[0.0, 0.0, 0.5, 0.5]"), outcome([1.0]), gt) == 1.0
    assert thousand(outcome([1.0], text="[0, 0, 500, 500]"), outcome([1.0]), gt) == 1.0
    assert acc(outcome([1.0], text="[0, 0, 32, 32]"), outcome([1.0]), sample()) is None


def test_builtin_metrics_declare_what_reports_need():
    for cls in BUILTIN_METRICS:
        assert cls.title and cls.title != cls.name, cls.name
        assert cls.value_type in ("binary", "continuous")
    binary = {cls.name for cls in BUILTIN_METRICS if cls.value_type == "binary"}
    assert binary == {"first_token_agreement", "sequence_agreement", "exact_match", "grounding_acc"}
    assert metric_info("kl_next_token").label() == "Next-token KL divergence (nats)\u00a0\u2193"
    assert metric_info("kept_tokens").label() == "Kept visual tokens (tokens)"  # no direction, no arrow
    assert metric_info("exact_match").binary and not metric_info("box_iou").binary
    assert metric_info("nosuch") == MetricInfo("nosuch", "nosuch", registered=False)


def test_metric_metadata_is_checked_when_the_class_is_defined():
    with pytest.raises(TypeError, match="metric class .*Bad: value_type must be 'binary' or 'continuous', got 'bool'"):
        type("Bad", (Metric,), {"name": "bad", "value_type": "bool"})
    with pytest.raises(TypeError, match="metric class .*Bad: higher_is_better must be True, False or None, got 'yes'"):
        type("Bad", (Metric,), {"name": "bad", "higher_is_better": "yes"})
    with pytest.raises(TypeError, match="metric class .*Bad: unit must be a string, got 3"):
        type("Bad", (Metric,), {"name": "bad", "unit": 3})


def test_builtins_registered_through_the_study_entry_point():
    catalog = get_study_catalog()
    assert catalog.metrics["kl_next_token"].provider == "study (tokcompress)"
    assert {"jsonl", "samples"} <= set(catalog.datasets)


THIRD_PARTY = """
    from pathlib import Path
    from tokcompress.component import Params
    from tokcompress.hookspecs import hookimpl
    from tokcompress.study.datasets import Dataset, Sample
    from tokcompress.study.metrics import Metric

    class AnswerLength(Metric):
        '''Characters in the generated text.'''
        name = "answer_length"
        class Params(Params):
            scale: float = 1.0
        def compute(self, run, reference, sample):
            return len(run.text) * self.params.scale

    class OneImage(Dataset):
        '''Every prompt on one image.'''
        name = "one_image"
        class Params(Params):
            image: str
            prompts: list[str]
        def load(self, base_dir):
            return [Sample(str(i), Path(base_dir) / self.params.image, p) for i, p in enumerate(self.params.prompts)]

    @hookimpl
    def tokcompress_register_metrics():
        return [AnswerLength]

    @hookimpl
    def tokcompress_register_datasets():
        return [OneImage]
"""


def test_third_party_metric_and_dataset_plug_into_a_suite(install_plugin, suite_file, tmp_path):
    from tokcompress.study.plan import build_plan
    from tokcompress.study.suite import load_suite

    install_plugin("tc-study-extras", "tc_study_extras", THIRD_PARTY)
    assert get_study_catalog().metrics["answer_length"].provider == "tc_study_extras (tc-study-extras)"
    (tmp_path / "img.png").write_bytes(IMAGE.read_bytes())
    loaded = load_suite(suite_file(metrics=[{"name": "answer_length", "scale": 2}],
                                   dataset={"name": "one_image", "image": "img.png", "prompts": ["a?", "b?"]}))
    assert loaded.metrics[0](outcome([1.0], text="abc"), outcome([1.0]), sample()) == 6.0
    plan = build_plan(loaded)
    assert [s.prompt for s in plan.samples] == ["a?", "b?"] and plan.samples[0].image == tmp_path / "img.png"


def test_duplicate_metric_name_across_plugins_is_an_error(install_plugin):
    from tokcompress.errors import PluginError

    install_plugin("tc-dup", "tc_dup", """
        from tokcompress.hookspecs import hookimpl
        from tokcompress.study.metrics import Metric

        class Other(Metric):
            name = "kl_next_token"

        @hookimpl
        def tokcompress_register_metrics():
            return [Other]
    """)
    with pytest.raises(PluginError, match="duplicate metric name 'kl_next_token'") as info:
        get_study_catalog()
    assert "study (tokcompress)" in str(info.value) and "tc_dup (tc-dup)" in str(info.value)


def test_jsonl_errors_name_the_line_and_field(tmp_path):
    (tmp_path / "a.png").write_bytes(IMAGE.read_bytes())
    path = tmp_path / "d.jsonl"
    cases = {
        '{"image": "a.png"}': "line 2: field 'prompt': Field required",
        '{"image": "a.png", "prompt": "x", "box": [5, 5, 1, 9]}': "line 2: field '(line)': Value error, box must be",
        '{"image": "b.png", "prompt": "x"}': "line 2: field 'image': no such file",
        '{"image": "a.png", "prompt": "x", "anwser": "y"}': "line 2: field 'anwser': Extra inputs are not permitted",
        '{"id": 1, "image": "a.png", "prompt": "x"}': "line 2: duplicate id '1' (first on line 1)",
        "{not json": "line 2: not valid JSON",
    }
    for line, message in cases.items():
        path.write_text('{"id": 1, "image": "a.png", "prompt": "ok", "answer": ["p", "q"]}\n' + line + "\n")
        with pytest.raises(InputError) as info:
            read_jsonl(path)
        assert message in str(info.value) and str(path) in str(info.value)
    path.write_text('{"image": "a.png", "prompt": "ok", "answer": ["p", "q"], "box": [1, 2, 3, 4]}\n\n')
    (s,) = read_jsonl(path)
    assert (s.id, s.answer, s.box, s.image) == ("1", ("p", "q"), (1, 2, 3, 4), (tmp_path / "a.png").resolve())


def test_bundled_samples_are_what_the_generator_draws(tmp_path):
    from PIL import Image

    from tokcompress.study.data.make_samples import records, write

    samples = SamplesDataset().load(Path("."))
    assert len(samples) == 8 and sum(s.answer is not None for s in samples) == 4 and sum(s.box is not None for s in samples) == 4
    for (rec, pixels), s in zip(records(), samples):
        assert s.id == rec["id"]
        assert np.array_equal(np.asarray(Image.open(s.image).convert("RGB")), pixels)
        if s.box is not None:  # the box is the tight box of the drawn shape
            x1, y1, x2, y2 = (int(v) for v in s.box)
            shape = np.any(pixels != pixels[0, 0], axis=-1)
            assert shape[y1:y2, x1:x2].sum() == shape.sum() and shape[y1, x1:x2].any() and shape[y2 - 1, x1:x2].any()
    write(tmp_path)
    assert (tmp_path / "samples.jsonl").read_text() == BUNDLED_JSONL.read_text()
    assert max(p.stat().st_size for p in (BUNDLED_JSONL.parent / "samples").glob("*.png")) < 1024

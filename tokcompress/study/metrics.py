"""Per-row metrics: how a pruned run compares with the unpruned one, and with labels when the sample has them.

A metric sees two `Outcome`s of the same model on the same sample (pruned and reference, i.e.
unpruned) and the `Sample`; it returns a float, or None when it does not apply (a labelled metric on
an unlabelled sample). Third parties return `Metric` subclasses from ``tokcompress_register_metrics``.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

import torch
from pydantic import Field

from ..component import Component, Params
from .datasets import Sample

__all__ = [
    "Outcome",
    "Metric",
    "DEFAULT_METRICS",
    "BUILTIN_METRICS",
    "normalize_answer",
    "parse_box",
    "box_iou",
]


@dataclass(frozen=True)
class Outcome:
    """What one run of a model on one sample produced.

    next_logprobs: ``[V]`` float32 log-softmax of the next-token distribution after the prompt (prefill).
    tokens:        greedily generated token ids, stopped at end-of-sequence (excluded) or the length limit.
    text:          `tokens` decoded.
    prefill_s:     wall time of the prefill forward pass (median over the timing rounds).
    visual_before / visual_after: visual tokens in the sequence before / after pruning.
    flops_ratio:   prefill FLOPs of the pruned run over the unpruned one (FastV's per-layer formula).
    select_s:      time spent inside the pruner's selection.
    speedup:       unpruned over pruned prefill time, the median of ratios of paired, interleaved
                   rounds (`tokcompress.timing.time_paired`); 1 for the unpruned run.
    """

    next_logprobs: torch.Tensor
    tokens: tuple[int, ...]
    text: str
    prefill_s: float
    visual_before: int
    visual_after: int
    flops_ratio: float = 1.0
    select_s: float = 0.0
    speedup: float = 1.0


ValueType = Literal["binary", "continuous"]


class Metric(Component):
    """One number per row. Subclasses set `name`, optionally `labels` and `Params`, and implement `compute`.

    The report reads four more class attributes, so that a paper figure or table never shows a raw id
    or picks the wrong interval: `title`, `unit`, `higher_is_better` (the direction) and `value_type`.
    """

    kind: ClassVar[str] = "metric"
    labels: ClassVar[frozenset[str]] = frozenset()
    """Sample labels the metric needs (``"answer"``, ``"box"``); rows whose sample lacks one get None."""
    title: ClassVar[str] = ""
    """Human label for axes, panel titles and table captions ("First-token agreement"); default: `name`."""
    unit: ClassVar[str] = ""
    """Unit after the title on axes and in captions ("ms", "nats"); empty for unitless numbers."""
    higher_is_better: ClassVar[bool | None] = None
    """Direction: True / False, or None when neither is better (token counts); arrows and verdicts follow it."""
    value_type: ClassVar[ValueType] = "continuous"
    """``"binary"``: every value is 0 or 1 (Wilson intervals, McNemar tests); ``"continuous"``: BCa bootstrap, Wilcoxon."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        where = f"metric class {cls.__qualname__}"
        if cls.value_type not in get_args(ValueType):
            raise TypeError(f"{where}: value_type must be 'binary' or 'continuous', got {cls.value_type!r}")
        if cls.higher_is_better not in (True, False, None):
            raise TypeError(f"{where}: higher_is_better must be True, False or None, got {cls.higher_is_better!r}")
        for field in ("title", "unit"):
            if not isinstance(getattr(cls, field), str):
                raise TypeError(f"{where}: {field} must be a string, got {getattr(cls, field)!r}")

    def compute(self, run: Outcome, reference: Outcome, sample: Sample) -> float | None:
        raise NotImplementedError

    def __call__(self, run: Outcome, reference: Outcome, sample: Sample) -> float | None:
        if any(not sample.has(label) for label in self.labels):
            return None
        value = self.compute(run, reference, sample)
        return None if value is None else float(value)


# -- label-free -----------------------------------------------------------------------------------


class FirstTokenAgreement(Metric):
    """1 if the first generated token equals the unpruned model's, else 0."""

    name = "first_token_agreement"
    title = "First-token agreement"
    unit = "fraction"
    value_type = "binary"
    higher_is_better = True

    def compute(self, run, reference, sample):
        return float(int(run.next_logprobs.argmax()) == int(reference.next_logprobs.argmax()))


class SequenceAgreement(Metric):
    """1 if the whole greedy generation equals the unpruned model's, else 0."""

    name = "sequence_agreement"
    title = "Sequence agreement"
    unit = "fraction"
    value_type = "binary"
    higher_is_better = True

    def compute(self, run, reference, sample):
        return float(run.tokens == reference.tokens)


class KLParams(Params):
    direction: Literal["reference||pruned", "pruned||reference"] = "reference||pruned"
    """KL(P||Q) order: the default weighs the unpruned model's likely tokens (how much the pruned run misses)."""


class NextTokenKL(Metric):
    """KL divergence (nats) between the unpruned and pruned next-token distributions after the prompt."""

    name = "kl_next_token"
    title = "Next-token KL divergence"
    higher_is_better = False
    unit = "nats"
    Params = KLParams

    def compute(self, run, reference, sample):
        p, q = reference.next_logprobs.double(), run.next_logprobs.double()
        if self.params.direction == "pruned||reference":
            p, q = q, p
        # exp(p) * (p - q), with 0 * anything = 0 where the reference assigns no mass
        terms = torch.where(torch.isneginf(p), torch.zeros_like(p), p.exp() * (p - q))
        return max(0.0, float(terms.sum()))


class KeptTokens(Metric):
    """Visual tokens left after pruning."""

    name = "kept_tokens"
    title = "Kept visual tokens"
    unit = "tokens"

    def compute(self, run, reference, sample):
        return run.visual_after


class VisualTokensMetric(Metric):
    """Visual tokens before pruning."""

    name = "visual_tokens"
    title = "Visual tokens before pruning"
    unit = "tokens"

    def compute(self, run, reference, sample):
        return run.visual_before


class FlopsRatio(Metric):
    """Prefill FLOPs of the pruned run over the unpruned run (1 = no saving)."""

    name = "flops_ratio"
    title = "Prefill FLOPs ratio"
    unit = "pruned / unpruned"
    higher_is_better = False

    def compute(self, run, reference, sample):
        return run.flops_ratio


class PrefillMs(Metric):
    """Measured prefill wall time in milliseconds (selection included)."""

    name = "prefill_ms"
    title = "Prefill time"
    higher_is_better = False
    unit = "ms"

    def compute(self, run, reference, sample):
        return run.prefill_s * 1e3


class Speedup(Metric):
    """Unpruned over pruned prefill time: median ratio of paired rounds run back to back on the same worker."""

    name = "prefill_speedup"
    title = "Prefill speed-up"
    higher_is_better = True
    unit = "x"

    def compute(self, run, reference, sample):
        return run.speedup


class SelectionMs(Metric):
    """Time spent in the pruner's selection, milliseconds."""

    name = "selection_ms"
    title = "Selection time"
    higher_is_better = False
    unit = "ms"

    def compute(self, run, reference, sample):
        return run.select_s * 1e3


# -- labelled -------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile("[" + re.escape(string.punctuation) + "]")


class ExactMatchParams(Params):
    lowercase: bool = True
    strip_punctuation: bool = True
    """Remove ASCII punctuation before comparing ("Circle." matches "circle")."""
    strip_articles: bool = True
    """Remove "a", "an", "the" (VQA-style normalisation)."""


def normalize_answer(text: str, params: ExactMatchParams = ExactMatchParams()) -> str:
    """The comparison form of an answer: optional lowercase / punctuation / article removal, single spaces."""
    if params.lowercase:
        text = text.lower()
    if params.strip_punctuation:
        text = _PUNCT.sub(" ", text)
    if params.strip_articles:
        text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


class ExactMatch(Metric):
    """1 if the normalised output equals any normalised reference answer, else 0."""

    name = "exact_match"
    title = "Exact-match accuracy"
    unit = "fraction"
    value_type = "binary"
    labels = frozenset({"answer"})
    higher_is_better = True
    Params = ExactMatchParams

    def compute(self, run, reference, sample):
        pred = normalize_answer(run.text, self.params)
        return float(any(pred == normalize_answer(a, self.params) for a in sample.answer))


_NUM = r"-?\d+(?:\.\d+)?"
_NUMBER = re.compile(r"(?<![\w.])" + _NUM + r"(?![\w.])")  # standalone: not the 2 of "bbox_2d" or the 1 of "x1"
_BRACKETED = re.compile(r"[\[(]\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*[\])]")


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """A predicted box ``(x1, y1, x2, y2)`` from model output, or None.

    The first bracketed group of four numbers wins (``[x1, y1, x2, y2]``, InternVL's
    ``<box>[[x1, y1, x2, y2]]</box>``, Qwen2.5-VL's JSON ``"bbox_2d": [...]``); otherwise the first
    four standalone numbers (Qwen2-VL's ``(x1,y1),(x2,y2)``, plain ``x1 y1 x2 y2``).
    """
    m = _BRACKETED.search(text)
    numbers = m.groups() if m else _NUMBER.findall(text)
    if len(numbers) < 4:
        return None
    x1, y1, x2, y2 = (float(n) for n in numbers[:4])
    return (x1, y1, x2, y2)


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes; a degenerate box scores 0.

    Hand-written on purpose, not ``torchvision.ops.box_iou``: torchvision from PyPI does not import
    beside the pinned torch 2.13.0 (its compiled ops are built against one torch release), and a
    metric scores one pair of boxes per row, so a batched tensor kernel would buy nothing for a
    heavy dependency. The property tests check symmetry, bounds and IoU(a, a) = 1.
    """
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


class BoxParams(Params):
    coordinates: Literal["pixel", "unit", "thousand"] = "pixel"
    """Scale of the model's box output: image pixels (Qwen2.5-VL), [0, 1], or [0, 1000] (Qwen2-VL, InternVL)."""


def predicted_box(text: str, sample: Sample, coordinates: str) -> tuple[float, float, float, float] | None:
    box = parse_box(text)
    if box is None or coordinates == "pixel":
        return box
    w, h = sample.image_size()
    scale = 1.0 if coordinates == "unit" else 1000.0
    return (box[0] * w / scale, box[1] * h / scale, box[2] * w / scale, box[3] * h / scale)


class BoxIoU(Metric):
    """IoU of the first box parsed from the output with the ground-truth box (0 when none parses)."""

    name = "box_iou"
    title = "Box IoU"
    labels = frozenset({"box"})
    higher_is_better = True
    Params = BoxParams

    def compute(self, run, reference, sample):
        box = predicted_box(run.text, sample, self.params.coordinates)
        return 0.0 if box is None else box_iou(box, sample.box)


class GroundingParams(BoxParams):
    threshold: float = Field(0.5, gt=0, le=1)
    """A prediction is correct when IoU >= threshold (RefCOCO convention: 0.5)."""


class GroundingAccuracy(Metric):
    """1 if the parsed box has IoU >= threshold with the ground truth, else 0 (no box parsed: 0)."""

    name = "grounding_acc"
    title = "Grounding accuracy"
    unit = "fraction"
    value_type = "binary"
    labels = frozenset({"box"})
    higher_is_better = True
    Params = GroundingParams

    def compute(self, run, reference, sample):
        box = predicted_box(run.text, sample, self.params.coordinates)
        return float(box is not None and box_iou(box, sample.box) >= self.params.threshold)


BUILTIN_METRICS: list[type[Metric]] = [
    FirstTokenAgreement,
    SequenceAgreement,
    NextTokenKL,
    KeptTokens,
    VisualTokensMetric,
    FlopsRatio,
    PrefillMs,
    Speedup,
    SelectionMs,
    ExactMatch,
    BoxIoU,
    GroundingAccuracy,
]

DEFAULT_METRICS = ("first_token_agreement", "sequence_agreement", "kl_next_token", "kept_tokens", "flops_ratio", "prefill_ms")
"""Label-free metrics a suite computes when it names none."""

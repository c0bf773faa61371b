"""The ``tokcompress_grounding`` task's functions: the shipped model's 200 committed test questions.

Scored exactly as `tokcompress ablate` scores them (`tokcompress.study.metrics`): a grounding answer
is correct when the first box it contains has IoU >= 0.5 with the truth, a counting answer when it
equals the count word after normalisation. ``accuracy`` is over all questions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokcompress.study.metrics import box_iou, normalize_answer, parse_box

from . import grounding_model

__all__ = ["doc_to_visual", "doc_to_text", "doc_to_target", "process_results", "IOU_THRESHOLD"]

IOU_THRESHOLD = 0.5


def doc_to_visual(doc: dict[str, Any]) -> list:
    from PIL import Image

    path = Path(grounding_model.TESTSET_JSONL).parent / doc["image"]
    with Image.open(path) as im:
        return [im.convert("RGB")]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    return doc["prompt"]


def doc_to_target(doc: dict[str, Any]) -> str:
    if doc.get("box") is not None:
        return " ".join(str(int(v)) for v in doc["box"])
    return doc["answer"]


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    text = results[0]
    if doc.get("box") is not None:
        box = parse_box(text)
        correct = float(box is not None and box_iou(box, tuple(doc["box"])) >= IOU_THRESHOLD)
        return {"accuracy": correct, "grounding_acc": correct}
    correct = float(normalize_answer(text) == normalize_answer(doc["answer"]))
    return {"accuracy": correct, "counting_exact_match": correct}

"""Helpers of the lmms-eval plugin tests: skip without lmms-eval, local tasks in a folder, one evaluation call."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lmms_eval", reason="lmms-eval is not installed; `make test` installs it (Makefile target 'lmms')")
pytest.importorskip("tokcompress_lmms_eval", reason="the plugin is not installed: pip install --no-deps -e plugins/lmms_eval")

from lmms_eval.evaluator import simple_evaluate  # noqa: E402
from lmms_eval.models import get_model  # noqa: E402
from lmms_eval.tasks import TaskManager  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[3] / "tokcompress" / "study" / "data" / "samples"

_UTILS = """\
from PIL import Image


def doc_to_visual(doc):
    with Image.open(doc["image"]) as im:
        return [im.convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["question"]


def doc_to_choice(doc):
    return doc["choices"]


def doc_to_target(doc):
    return doc["answer"]


def process_results(doc, results):
    return {"answered": float(isinstance(results[0], str))}
"""

_HEADER = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: !function utils.doc_to_target
"""

_GENERATE = """\
output_type: generate_until
process_results: !function utils.process_results
generation_kwargs: {max_new_tokens: 4, do_sample: false}
metric_list: [{metric: answered, aggregation: mean, higher_is_better: true}]
"""

_CHOICE = """\
output_type: multiple_choice
doc_to_choice: !function utils.doc_to_choice
metric_list: [{metric: acc, aggregation: mean, higher_is_better: true}]
"""


def write_task(folder: Path, name: str, rows: list[dict[str, Any]], kind: str) -> Path:
    """A local JSON task in `folder` (``kind``: ``generate`` or ``choice``) whose docs carry image paths."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "utils.py").write_text(_UTILS)
    body = _HEADER.format(name=name, data=data) + (_GENERATE if kind == "generate" else _CHOICE)
    (folder / f"{name}.yaml").write_text(textwrap.dedent(body))
    return folder


def image(name: str = "box-circle.png") -> str:
    return str(SAMPLES / name)


def make_model(model_args: str, *, force_simple: bool = False):
    """The plugin's lmms instance, resolved through lmms-eval's registry as the CLI does."""
    return get_model("tokcompress", force_simple).create_from_arg_string(model_args)


def evaluate(lm, task: str, task_dir: Path, limit: int | None = None) -> dict[str, Any]:
    """`simple_evaluate` on one task of `task_dir` (lmms-eval's own tasks are not indexed: faster, offline)."""
    manager = TaskManager("WARNING", include_path=str(task_dir), include_defaults=False)
    return simple_evaluate(model=lm, tasks=[task], task_manager=manager, limit=limit, log_samples=True,
                           verbosity="WARNING", bootstrap_iters=0)


def samples(results: dict[str, Any], task: str) -> list[dict[str, Any]]:
    return sorted(results["samples"][task], key=lambda s: s["doc_id"])

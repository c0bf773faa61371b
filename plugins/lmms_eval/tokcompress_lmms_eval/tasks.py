"""Writes the offline ``tokcompress_grounding`` task for lmms-eval's ``--include_path``.

lmms-eval hands ``dataset_kwargs`` to ``datasets.load_dataset``, which resolves relative data files
against the working directory, so the YAML names the committed test set by absolute path and is
written where this installation's files are known: ``tokcompress-lmms-eval tasks`` prints the folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import grounding_model

__all__ = ["TASK", "default_dir", "write_tasks"]

TASK = "tokcompress_grounding"
_FN = "tokcompress_lmms_eval.grounding_task"

_YAML = """\
# Written by `tokcompress-lmms-eval tasks`: the shipped grounding model's 200 committed test questions, offline.
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_visual: !function {fn}.doc_to_visual
doc_to_text: !function {fn}.doc_to_text
doc_to_target: !function {fn}.doc_to_target
process_results: !function {fn}.process_results
generation_kwargs:
  max_new_tokens: 6
  temperature: 0
  do_sample: false
metric_list:
  - metric: accuracy
    aggregation: mean
    higher_is_better: true
  - metric: grounding_acc
    aggregation: mean
    higher_is_better: true
  - metric: counting_exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def default_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tokcompress" / "lmms_eval_tasks"


def write_tasks(out_dir: str | Path | None = None) -> Path:
    """Write ``tokcompress_grounding.yaml`` into `out_dir` (default `default_dir`) and return the folder."""
    folder = Path(out_dir) if out_dir is not None else default_dir()
    folder.mkdir(parents=True, exist_ok=True)
    data = Path(grounding_model.TESTSET_JSONL).resolve()
    if not data.is_file():
        raise FileNotFoundError(f"the grounding test set is missing: {data}")
    text = _YAML.format(task=TASK, data=data, fn=_FN)
    path = folder / f"{TASK}.yaml"
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return folder

"""The one place this plugin reaches the shipped grounding model's committed test set (the offline task's data)."""

from __future__ import annotations

from tokcompress_grounding import TESTSET_JSONL

__all__ = ["SOURCE", "TESTSET_JSONL"]

SOURCE = "grounding"
"""``pretrained=grounding``: the model source the grounding plugin registers."""

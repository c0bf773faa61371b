"""The one place this plugin imports the shipped grounding model (its folder and committed test set).

The model is moving to the ``tokcompress_grounding`` distribution; only the import below changes then.
"""

from __future__ import annotations

from tokcompress.grounding import DEFAULT_MODEL_DIR, TESTSET_JSONL

__all__ = ["SOURCE", "DEFAULT_MODEL_DIR", "TESTSET_JSONL"]

SOURCE = "grounding"
"""``pretrained=grounding`` loads the shipped model."""

"""lmms-eval model plugin: `lmms-eval --model tokcompress --model_args pretrained=...,pruner=d2pruner,keep=64`.

Registered through lmms-eval's ``lmms_eval.models`` entry-point group as model ``tokcompress`` with a
chat class (lmms-eval's default) and a simple class (``--force_simple``, needed by multiple-choice
tasks, which lmms-eval only builds for simple models). Modules: `options` (model_args), `loading`
(checkpoints, the shipped grounding model, tiny random models), `accounting` (what pruning did, per
sample and per run), `model` (the lmms classes), `tasks` (the offline ``tokcompress_grounding`` task).
"""

from __future__ import annotations

__all__ = ["manifests", "MODEL_ID"]

MODEL_ID = "tokcompress"


def manifests():
    """The `ModelManifest` lmms-eval loads from the entry point (imported lazily: lmms-eval is the caller)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=MODEL_ID, simple_class_path="tokcompress_lmms_eval.model.TokcompressSimple",
                          chat_class_path="tokcompress_lmms_eval.model.TokcompressChat")]

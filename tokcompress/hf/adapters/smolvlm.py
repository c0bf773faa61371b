"""SmolVLM: every tile is its own run of tokens; the language model is ``model.model.text_model``."""

from __future__ import annotations

import math

from ...layout import Grid, Layout
from ..layout import visual_runs
from .base import CallInputs, ModelAdapter


class SmolVLMAdapter(ModelAdapter):
    """`SmolVLMForConditionalGeneration`: square tiles of ``(image_size/patch)^2 / scale_factor^2`` tokens.

    The processor writes the crops of a split image and then its global view, each as a separate
    run. The model inputs do not say where one image ends, so when a row holds several runs the
    last one is marked ``thumbnail`` (exact for the usual one-image prompt); the others are ``tile``.
    """

    family = "smolvlm"
    architectures = ("SmolVLMForConditionalGeneration",)
    transformers_versions = "!=5.20.1,!=5.20.2"
    transformers_reason = ("SmolVLM's inputs_merger in 5.20.1 and 5.20.2 reshapes image features by patch_size and "
                           "fails unless it divides the tokens per tile (tests/hf fail there even unpruned)")

    def decoder(self):
        return self.model.model.text_model

    def row_layouts(self, call: CallInputs) -> list[Layout | None]:
        out: list[Layout | None] = []
        for runs in visual_runs(call.visual):
            grids = []
            for i, run in enumerate(runs):
                side = math.isqrt(run)
                kind = "thumbnail" if len(runs) > 1 and i == len(runs) - 1 else "tile"
                grids.append(Grid(side, run // side, kind) if side * side == run else Grid(1, run, kind))
            out.append(Layout(tuple(grids)) if grids else None)
        return out

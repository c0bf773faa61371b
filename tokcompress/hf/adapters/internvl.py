"""InternVL: each image is a run of tiles between ``<img>`` and ``</img>``, the last of several being the thumbnail."""

from __future__ import annotations

from ...errors import InputError
from ...layout import Layout
from ..layout import tiles_layout, visual_runs
from .base import CallInputs, ModelAdapter


class InternVLAdapter(ModelAdapter):
    """`InternVLForConditionalGeneration`: ``image_seq_length`` tokens per tile, one run of tiles per image.

    The processor appends a global thumbnail tile to every image split into several tiles, so the
    last tile of a multi-tile run is marked ``thumbnail`` (parameter `thumbnail` of `tiles_layout`).
    """

    family = "internvl"
    architectures = ("InternVLForConditionalGeneration",)

    def row_layouts(self, call: CallInputs) -> list[Layout | None]:
        per = int(self.config.image_seq_length)
        out: list[Layout | None] = []
        for b, runs in enumerate(visual_runs(call.visual)):
            segments = []
            for run in runs:
                if run % per:
                    raise InputError(f"row {b}: an image run of {run} tokens is not a whole number of {per}-token tiles")
                segments += tiles_layout(run // per, per).segments
            out.append(Layout(tuple(segments)) if segments else None)
        return out

"""Gemma3: pooled square image grids, sliding-window layers, bidirectional attention inside each image."""

from __future__ import annotations

import torch

from ...layout import Layout
from ..layout import row_layouts, square_layout
from .base import CallInputs, ModelAdapter


class Gemma3Adapter(ModelAdapter):
    """`Gemma3ForConditionalGeneration`: ``mm_tokens_per_image`` tokens per image.

    With ``token_type_ids`` the model lets the tokens of one image attend to each other in both
    directions; after pruning the kept image tokens keep that block structure (`block_sequence_ids`).
    Sliding windows count kept tokens, as they do in the KV cache.
    """

    family = "gemma3"
    architectures = ("Gemma3ForConditionalGeneration",)

    def row_layouts(self, call: CallInputs) -> list[Layout | None]:
        per = int(self.config.mm_tokens_per_image)
        counts = call.visual.sum(dim=1).tolist()
        return row_layouts(counts, [square_layout(per)] * (sum(counts) // per))

    def block_sequence_ids(self, call: CallInputs, index: torch.Tensor, real: torch.Tensor) -> torch.Tensor | None:
        types = call.kwargs.get("token_type_ids")
        if types is None:
            return None
        from transformers.models.gemma3.modeling_gemma3 import get_block_sequence_ids_for_mask

        kept = torch.gather(types.to(index.device), 1, index).masked_fill(~real, 0)
        return get_block_sequence_ids_for_mask(kept, device=index.device)

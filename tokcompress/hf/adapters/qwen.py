"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL: M-RoPE positions, ``image_grid_thw`` layouts, Qwen3-VL deepstack."""

from __future__ import annotations

from typing import Any

import torch

from ...errors import InputError
from ...layout import Layout
from ..layout import qwen_image_layout, row_layouts
from .base import CallInputs, ModelAdapter


class QwenVLAdapter(ModelAdapter):
    """Qwen2-VL / Qwen2.5-VL: one ``(h/merge) x (w/merge)`` grid per image frame.

    Position ids reach the language model as ``[3, B, N]`` or ``[4, B, N]`` (text row first); every
    row is gathered, so the kept tokens keep their original M-RoPE coordinates.
    """

    family = "qwen2_vl"
    architectures = ("Qwen2VLForConditionalGeneration",)

    def row_layouts(self, call: CallInputs) -> list[Layout | None]:
        grids = call.kwargs.get("image_grid_thw")
        counts = call.visual.sum(dim=1).tolist()
        if grids is None:
            raise InputError(f"{self.family} inputs carry image tokens but no image_grid_thw")
        merge = self.config.vision_config.spatial_merge_size
        return row_layouts(counts, [qwen_image_layout(g.tolist(), merge) for g in grids])


class Qwen25VLAdapter(QwenVLAdapter):
    family = "qwen2_5_vl"
    architectures = ("Qwen2_5_VLForConditionalGeneration",)


class Qwen3VLAdapter(QwenVLAdapter):
    """Qwen3-VL: deepstack adds vision features at ``visual_pos_masks`` after the first layers.

    After pruning, the masks and the per-layer features are gathered to the kept tokens, so any
    pruning layer K works (also K below the number of deepstack layers).
    """

    family = "qwen3_vl"
    architectures = ("Qwen3VLForConditionalGeneration",)

    def gather_lm_kwargs(self, kwargs: dict[str, Any], index: torch.Tensor, real: torch.Tensor) -> None:
        masks = kwargs.get("visual_pos_masks")
        embeds = kwargs.get("deepstack_visual_embeds")
        if masks is None:
            return
        new_masks, rows = gather_deepstack(masks, index, real)
        kwargs["visual_pos_masks"] = new_masks
        if embeds is not None:
            kwargs["deepstack_visual_embeds"] = [e[rows.to(e.device)] for e in embeds]

    def install(self, state) -> list:
        decoder = self.decoder()
        original = decoder._deepstack_process  # bound method (or a previous instance attribute)
        had_instance_attr = "_deepstack_process" in vars(decoder)

        def deepstack(hidden_states, visual_pos_masks, visual_embeds):
            kept = state.kept_for_length(hidden_states.shape[1], visual_pos_masks.shape[1])
            if kept is not None:
                visual_pos_masks, rows = gather_deepstack(visual_pos_masks, kept.index, kept.real)
                visual_embeds = visual_embeds[rows.to(visual_embeds.device)]
            return original(hidden_states, visual_pos_masks, visual_embeds)

        decoder._deepstack_process = deepstack

        def undo():
            if had_instance_attr:
                decoder._deepstack_process = original
            else:
                del decoder._deepstack_process

        return [undo]


def gather_deepstack(masks: torch.Tensor, index: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Deepstack positions of the kept sequence and which feature rows they take.

    `masks` [B, N] marks the positions whose features are stacked (feature rows follow the mask's
    row-major order); `index` [B, M] are the kept positions and `real` [B, M] is False at filler
    slots. Returns the kept mask [B, M] and the feature rows, in the kept sequence's row-major order.
    """
    masks = masks.to(index.device).bool()
    row_of = (masks.flatten().long().cumsum(0) - 1).view(masks.shape)
    new_masks = torch.gather(masks, 1, index) & real
    return new_masks, torch.gather(row_of, 1, index)[new_masks]

"""LLaVA-1.5 (one square grid per image) and LLaVA-NeXT (anyres: base grid + unpadded crops with newlines)."""

from __future__ import annotations

from ...errors import InputError
from ...layout import Layout
from ..layout import llava_next_image_layout, row_layouts, square_layout
from .base import CallInputs, ModelAdapter, VisionSide


class LlavaAdapter(ModelAdapter):
    """`LlavaForConditionalGeneration`: every image is ``(image_size / patch)^2`` tokens (plus CLS with strategy ``full``)."""

    family = "llava"
    architectures = ("LlavaForConditionalGeneration",)

    def vision_side(self) -> VisionSide:
        cfg = self.config
        layer = cfg.vision_feature_layer
        if not isinstance(layer, int) or layer == 0:
            raise InputError(f"placement 'vision' needs one vision_feature_layer other than 0 (the embeddings), got {layer!r}")
        tower = self.model.model.vision_tower
        layers = tower.encoder.layers
        return VisionSide(tower=tower, projector=self.model.model.multi_modal_projector,
                          attention=layers[layer if layer < 0 else layer - 1].self_attn, config=cfg.vision_config,
                          skip=1 if cfg.vision_feature_select_strategy == "default" else 0, layout=square_layout,
                          tokens_per_image=self.tokens_per_image())

    def tokens_per_image(self) -> int:
        v = self.config.vision_config
        n = (v.image_size // v.patch_size) ** 2
        return n + int(getattr(self.config, "vision_feature_select_strategy", "default") == "full")

    def row_layouts(self, call: CallInputs) -> list[Layout | None]:
        per = self.tokens_per_image()
        counts = call.visual.sum(dim=1).tolist()
        total = sum(counts)
        if total % per:
            raise InputError(f"{total} image tokens is not a multiple of {per} tokens per image")
        return row_layouts(counts, [square_layout(per)] * (total // per))


class LlavaNextAdapter(ModelAdapter):
    """`LlavaNextForConditionalGeneration`: layouts from ``image_sizes`` and ``image_grid_pinpoints``."""

    family = "llava_next"
    architectures = ("LlavaNextForConditionalGeneration",)

    def row_layouts(self, call: CallInputs) -> list[Layout | None]:
        sizes = call.kwargs.get("image_sizes")
        counts = call.visual.sum(dim=1).tolist()
        if sizes is None:
            raise InputError("LLaVA-NeXT inputs carry image tokens but no image_sizes; pass the processor's image_sizes")
        if self.config.vision_feature_select_strategy != "default":
            raise InputError("LLaVA-NeXT layouts need vision_feature_select_strategy 'default' (CLS dropped)")
        return row_layouts(counts, [llava_next_image_layout(self.config, s) for s in sizes])

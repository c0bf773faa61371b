"""The ``vision`` placement (VisionZip style, LLaVA): select and merge vision-tower features before the projector.

The pruner sees each image's vision features at ``vision_feature_layer``, the CLS token's head-mean
attention and the keys of the layer that produced them (probed without eager attention), and a
square layout. Kept (or merged) features go through the projector in place, so the model's
placeholder count check still passes; the dropped image tokens are removed before the decoder
exactly as in the ``pre_llm`` placement. The budget applies per image.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ..errors import InputError
from ..pruner import resolve_budget
from ..tokens import VisualTokens
from .layout import square_layout
from .probes import AttentionProbe

__all__ = ["VisionSide", "rows_from_flat"]


class VisionSide:
    """Hooks on the vision tower and projector of one LLaVA model, owned by a `PruningHandle`."""

    def __init__(self, handle) -> None:
        self.handle = handle
        model = handle.model
        cfg = model.config
        layer = cfg.vision_feature_layer
        if not isinstance(layer, int) or layer == 0:
            raise InputError(f"placement 'vision' needs one vision_feature_layer other than 0 (the embeddings), got {layer!r}")
        self.tower = model.model.vision_tower
        self.projector = model.model.multi_modal_projector
        layers = self.tower.encoder.layers
        self.target = layers[layer if layer < 0 else layer - 1].self_attn
        self.has_cls = cfg.vision_feature_select_strategy == "default"
        self.probe: AttentionProbe | None = None

    def install(self) -> list[Any]:
        h = self.handle
        needs = h.pruner.requires
        undo = []
        want_attn, want_keys = "attention" in needs, "keys" in needs
        if want_attn or want_keys:
            self.probe = AttentionProbe(self.target, want_attn, want_keys, row=0)
            undo.append(self.probe.install(h.model, h.model.config.vision_config, "vision_config"))
            undo.append(self.tower.register_forward_pre_hook(self._on_tower).remove)
        undo.append(self.projector.register_forward_pre_hook(self._on_projector).remove)
        return undo

    def _on_tower(self, module, args) -> None:
        self.probe.arm()

    def _on_projector(self, module, args):
        """Select (and merge) each image's features; the choice waits for the prefill that uses them.

        `generate` encodes images before its first forward, so this runs before or inside that
        forward; `PruningHandle` maps the per-image choice to sequence positions at the decoder.
        """
        h = self.handle
        feats = args[0]
        if self.probe is not None:
            self.probe.disarm()
        if h._frozen is not None:
            h._vision_pending = (None, 0.0, feats.shape[0] * feats.shape[1])
            return None
        start = time.perf_counter()
        n_img, T, _ = feats.shape
        fields: dict[str, Any] = {"features": feats.float()}
        skip = 1 if self.has_cls else 0
        if self.probe is not None:
            if self.probe.want_attention:
                fields["attention"] = self.probe.attention[:, skip:].to(feats.device)
            if self.probe.want_keys:
                fields["keys"] = self.probe.keys[:, skip:].float().to(feats.device)
        tokens = VisualTokens(**fields, layout=square_layout(T))
        k = resolve_budget(T, h.keep, h.ratio)
        out = None
        if h.pruner.merger is not None:
            merged = h.pruner.compress(tokens, keep=k)
            idx = merged.indices
            out = feats.clone()
            out.scatter_(1, idx.unsqueeze(-1).expand(-1, -1, feats.shape[-1]), merged.features.to(feats.dtype))
        else:
            idx = h.pruner.select(tokens, keep=k)
        if feats.is_cuda:
            torch.cuda.synchronize(feats.device)
        # image i's token j is visual token i*T + j of the batch, in row-major order
        flat = (idx + torch.arange(n_img, device=idx.device)[:, None] * T).flatten()
        h._vision_pending = (flat, time.perf_counter() - start, n_img * T)
        return (out,) if out is not None else None


def rows_from_flat(visual: torch.Tensor, flat: torch.Tensor) -> list[torch.Tensor]:
    """Each row's kept sequence positions, from kept indices into the batch's row-major visual tokens."""
    chosen, offset = [], 0
    flat = flat.to(visual.device)
    for row in visual:
        positions = row.nonzero().flatten()
        mine = flat[(flat >= offset) & (flat < offset + len(positions))] - offset
        chosen.append(positions[mine])
        offset += len(positions)
    if offset != 0 and int(flat.max()) >= offset:
        raise InputError(f"the vision-side selection covers more image tokens than the prompt holds ({offset})")
    return chosen

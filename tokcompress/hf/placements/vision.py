"""``apply: {placement: vision}`` (VisionZip style): select and merge vision-tower features before the projector.

The pruner sees each image's vision features at ``vision_feature_layer``, the CLS token's head-mean
attention and the keys of the layer that produced them (probed without eager attention), and each
image's layout. Kept (or merged) features go through the projector in place, so the model's
placeholder count check still passes; the dropped image tokens are removed before the decoder
exactly as in the ``pre_llm`` placement. The budget applies per image. The model's vision tower is
reached through its adapter (`ModelAdapter.vision_side`), so a family opts in by implementing it.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ...errors import InputError, SpecError
from ...tokens import VisualTokens
from ..kept import build_kept, take
from ..probes import AttentionProbe
from ..state import VisionChoice
from .base import ModelPlacement, PositionsParams
from .inputs import InputsStrategy

__all__ = ["VisionPlacement", "VisionStrategy", "rows_from_flat"]


class VisionStrategy(InputsStrategy):
    def __init__(self, handle, params) -> None:
        super().__init__(handle, params)
        self.side = None
        self.probe: AttentionProbe | None = None

    def check_model(self) -> None:
        if isinstance(self.handle.budget.keep, tuple):
            raise InputError(f"placement 'vision' applies one budget to every image; a per-row keep "
                             f"{list(self.handle.budget.keep)} has no meaning there: pass one keep= or ratio=")
        self.side = self.handle.adapter.vision_side()
        if self.side is None:
            raise InputError(
                f"placement 'vision' is not implemented for {self.handle.adapter.family!r} (its adapter has no "
                "vision_side); use placement 'pre_llm' or 'layer'"
            )

    unit = "image"

    def install(self) -> list[Any]:
        """The projector hook, and the CLS-attention probe unless the budget keeps whole images (then the
        vision tower keeps its own attention). Images are encoded before the first forward of
        ``generate``, so the probe cannot wait for the first pruned prefill."""
        h, side = self.handle, self.side
        undo = [side.projector.register_forward_pre_hook(self._on_projector).remove]
        needs = h.pruner.requires
        want_attn, want_keys = "attention" in needs, "keys" in needs
        if (want_attn or want_keys) and not self._keeps_image(side.tokens_per_image):
            self.probe = probe = AttentionProbe(side.attention, want_attn, want_keys, row=0)
            undo.append(probe.install(h.model, side.config, "vision_config"))
            undo.append(side.tower.register_forward_pre_hook(lambda m, a: probe.arm()).remove)
        return undo

    def _keeps_image(self, tokens: int) -> bool:
        return self.handle.budget.count(tokens) >= tokens

    def budget_units(self, call) -> list[int]:
        """The vision budget applies per image: each image's feature count."""
        per = self.side.tokens_per_image
        return [per] * (int(call.visual.sum()) // per)

    def _on_projector(self, module, args):
        """Select (and merge) each image's features; the choice waits for the prefill that uses them.

        `generate` encodes images before its first forward, so this runs before or inside that
        forward; `prefill` maps the per-image choice to sequence positions at the decoder.
        """
        h = self.handle
        feats = args[0]
        if self._keeps_image(feats.shape[1]):  # the budget keeps whole images: leave the features alone
            return None
        if self.probe is not None:
            self.probe.disarm()
        n_img, T, D = feats.shape
        if h.state.frozen is not None:
            h.state.vision = VisionChoice(None, 0.0, n_img * T)
            return None
        start = time.perf_counter()
        fields: dict[str, Any] = {"features": feats.float()}
        skip = self.side.skip
        if self.probe is not None:
            if self.probe.want_attention:
                fields["attention"] = self.probe.attention[:, skip:].to(feats.device)
            if self.probe.want_keys:
                fields["keys"] = self.probe.keys[:, skip:].float().to(feats.device)
        sel = h.pruner.prune(VisualTokens(**fields, layout=self.side.layout(T), check_values=False), budget=h.budget)
        out = None
        if sel.merged_flags is not None and bool(sel.merged_flags.any()):
            out = feats.clone()
            rows, slots = sel.merged.nonzero(as_tuple=True)
            out[rows, sel.indices[rows, slots]] = sel.features[rows, slots].to(feats.dtype)
        if feats.is_cuda:
            torch.cuda.synchronize(feats.device)
        # image i's token j is visual token i*T + j of the batch, in row-major order
        flat = (sel.indices + torch.arange(n_img, device=sel.indices.device)[:, None] * T).flatten()
        h.state.vision = VisionChoice(flat, time.perf_counter() - start, n_img * T)
        return (out,) if out is not None else None

    def prefill(self, kwargs: dict[str, Any], cache: Any) -> None:
        h, state = self.handle, self.handle.state
        embeds = kwargs["inputs_embeds"]
        pending, state.vision = state.vision, None
        if pending is None:
            raise InputError("placement 'vision' found no image features for this prompt (no pixel_values?)")
        visual = state.call.visual.to(embeds.device)
        if int(visual.sum()) != pending.count:
            raise InputError(f"the vision-side selection covers {pending.count} image features but the prompt holds "
                             f"{int(visual.sum())} image tokens")
        chosen = h.frozen_choice(visual) if pending.flat is None else rows_from_flat(visual, pending.flat)
        kept = build_kept(visual, chosen)
        h.record(kept, chosen, pending.seconds)
        self.gather_inputs(kwargs, cache, kept, take(embeds, kept.index, 1))


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


class VisionPlacement(ModelPlacement):
    """Select and merge vision-tower features before the projector (VisionZip); LLaVA only."""

    name = "vision"
    provides = frozenset({"features", "attention", "keys", "layout", "mask"})
    Params = PositionsParams
    strategy = VisionStrategy

    def check(self, parts, others) -> None:
        super().check(parts, others)
        merger = parts.get("merger")
        if merger is not None and merger.gives_sizes():
            raise SpecError(
                f"merger {merger.name!r} (kept-token sizes, attention bias) is not supported with placement 'vision'; "
                "use placement 'pre_llm' or 'layer'"
            )

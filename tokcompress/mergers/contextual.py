"""Contextual merge (VisionZip): fold every dropped token into its most similar kept *target* token.

The targets are the kept tokens the selector marks `TARGET` (``visionzip``: its contextual tokens;
``targets: all``: every kept token). Each dropped valid token is assigned to the target whose vector
(L2-normalised keys by default) has the largest cosine with its own (first target on ties), and each
target's features become ``target + mean(assigned)`` (VisionZip's released code; the target alone
when nothing is assigned) or ``mean(target, assigned...)``. Tokens marked `KEEP` keep their own.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from ..component import Params
from ..selectors.base import TARGET
from ..tokens import VisualTokens
from .base import Merger

__all__ = ["ContextualMerger", "MergeParams"]


class MergeParams(Params):
    source: Literal["keys", "features"] = "keys"
    """Vectors whose cosine assigns dropped tokens to targets (VisionZip: head-mean keys)."""
    combine: Literal["target_plus_mean", "mean"] = "target_plus_mean"
    """``target_plus_mean``: target + mean of its assigned tokens (VisionZip's released code);
    ``mean``: mean over the target and its assigned tokens together."""
    targets: Literal["roles", "all"] = "roles"
    """``roles``: merge into the tokens the selector marks as targets (VisionZip's contextual tokens);
    ``all``: every kept token is a target (works after any selector)."""


class ContextualMerger(Merger):
    """Replaces each target's features with its merge; other kept tokens keep their own; fp32 inside."""

    name = "contextual"
    Params = MergeParams

    def needs_roles(self) -> bool:
        return self.params.targets == "roles"

    def requires(self) -> frozenset[str]:
        return frozenset({"keys"}) if self.params.source == "keys" else frozenset()

    def merge(self, tokens: VisualTokens, keep: torch.Tensor, roles: torch.Tensor | None,
              scores: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params
        feats = tokens.features
        D = feats.shape[-1]
        out = torch.gather(feats, 1, keep.unsqueeze(-1).expand(-1, -1, D)).float()
        is_target = torch.ones_like(keep, dtype=torch.bool) if p.targets == "all" else roles == TARGET
        dropped = tokens.valid_mask().scatter(1, keep, False)
        if not bool(is_target.any()) or not bool(dropped.any()):
            return out.to(feats.dtype), torch.zeros_like(is_target)
        vectors = F.normalize((tokens.keys if p.source == "keys" else feats).float(), dim=-1)
        for b in range(keep.shape[0]):
            slots = is_target[b].nonzero().flatten()  # positions in `keep`, ascending token index
            others = dropped[b].nonzero().flatten()
            if len(others) == 0 or len(slots) == 0:
                continue
            sim = vectors[b, others] @ vectors[b, keep[b, slots]].T  # [n_other, c]
            assign = F.one_hot(sim.argmax(dim=1), len(slots)).float()  # first max on ties
            counts = assign.sum(dim=0)[:, None]
            summed = assign.T @ feats[b, others].float()
            if p.combine == "target_plus_mean":
                merged = out[b, slots] + summed / counts.clamp(min=1)
            else:
                merged = (out[b, slots] + summed) / (counts + 1)
            out[b, slots] = merged
        return out.to(feats.dtype), is_target

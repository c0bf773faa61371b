"""Contextual merge (VisionZip): fold every dropped token into its most similar kept *target* token.

The kept tokens are split in two: the top ``keep - c`` by score are *dominant* and keep their own
features; the other ``c`` (``contextual_count``) are *targets*. Each dropped valid token is assigned
to the target whose vector (L2-normalised keys by default) has the largest cosine with its own
(first target on ties), and each target's features become ``target + mean(assigned)`` (VisionZip's
released code; the target alone when nothing is assigned) or ``mean(target, assigned...)``.

The selector must keep targets that rank below every dominant token, which a "top-k by score, then
targets from the rest" selector (``visionzip``) does; the split parameters must match the selector's.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from ..component import Params
from ..errors import InputError
from ..selectors.base import rank_descending
from ..tokens import VisualTokens
from .base import Merger

__all__ = ["ContextualMerger", "ContextualParams", "contextual_count"]


class ContextualParams(Params):
    contextual: int | None = Field(None, ge=0)
    """Number of contextual (target) tokens among the kept ones; None derives it from the ratio."""
    contextual_ratio: float = Field(0.15625, ge=0, le=1)
    """Targets as a share of the budget, ``floor(keep * ratio)``: 0.15625 = 10/64 gives VisionZip's
    published splits 54+10, 108+20, 162+30 for 64, 128, 192 tokens."""
    cls_first: bool = False
    """Token 0 is a [CLS] token that is always dominant (VisionZip's own layout, 577 tokens with CLS);
    it then takes one of the ``keep - c`` dominant slots whatever its score."""


def contextual_count(keep: int, contextual: int | None, contextual_ratio: float) -> int:
    """Targets among `keep` kept tokens: `contextual` (at most `keep`), else ``floor(keep * ratio)``."""
    if contextual is not None:
        return min(contextual, keep)
    return min(keep, math.floor(keep * contextual_ratio + 1e-9))


def dominant_mask(keep: torch.Tensor, scores: torch.Tensor | None, n_dominant: int, cls_first: bool) -> torch.Tensor:
    """``[B, M]`` bool over the kept indices: True for the `n_dominant` dominant ones.

    Dominant = highest score among the kept, ties to the lower index (the selector's own order), with
    token 0 forced in first when `cls_first`.
    """
    B, M = keep.shape
    if n_dominant == 0:
        return torch.zeros(B, M, dtype=torch.bool, device=keep.device)
    if scores is None:
        raise InputError("contextual merge needs token scores to tell dominant from contextual tokens; add a scorer")
    s = torch.gather(scores.float(), 1, keep)
    if cls_first:
        if not bool((keep[:, 0] == 0).all()):
            raise InputError("contextual merge with cls_first=True: token 0 ([CLS]) is not among the kept tokens")
        s = s.clone()
        s[:, 0] = float("inf")
    order = rank_descending(s)[:, :n_dominant]
    return torch.zeros(B, M, dtype=torch.bool, device=keep.device).scatter(1, order, True)


class MergeParams(ContextualParams):
    source: Literal["keys", "features"] = "keys"
    """Vectors whose cosine assigns dropped tokens to targets (VisionZip: head-mean keys)."""
    combine: Literal["target_plus_mean", "mean"] = "target_plus_mean"
    """``target_plus_mean``: target + mean of its assigned tokens (VisionZip's released code);
    ``mean``: mean over the target and its assigned tokens together."""


class ContextualMerger(Merger):
    """Replaces each target's features with its merge; dominant tokens keep their own; fp32 inside."""

    name = "contextual"
    Params = MergeParams

    @property
    def needs_scores(self) -> bool:  # type: ignore[override]
        return not (self.params.contextual is None and self.params.contextual_ratio >= 1.0)

    @property
    def requires(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({"keys"}) if self.params.source == "keys" else frozenset()

    def merge(self, tokens: VisualTokens, keep: torch.Tensor, scores: torch.Tensor | None) -> torch.Tensor:
        p = self.params
        feats = tokens.features
        D = feats.shape[-1]
        out = torch.gather(feats, 1, keep.unsqueeze(-1).expand(-1, -1, D)).float()
        M = keep.shape[1]
        c = contextual_count(M, p.contextual, p.contextual_ratio)
        if c == 0:
            return out.to(feats.dtype)
        is_target = ~dominant_mask(keep, scores, M - c, p.cls_first)
        vectors = F.normalize((tokens.keys if p.source == "keys" else feats).float(), dim=-1)
        dropped = tokens.valid_mask().scatter(1, keep, False)
        for b in range(keep.shape[0]):
            slots = is_target[b].nonzero().flatten()  # positions in `keep`, ascending token index
            targets = keep[b, slots]
            others = dropped[b].nonzero().flatten()
            if len(others) == 0:
                continue
            sim = vectors[b, others] @ vectors[b, targets].T  # [n_other, c]
            assign = F.one_hot(sim.argmax(dim=1), len(targets)).float()  # first max on ties
            counts = assign.sum(dim=0)[:, None]
            summed = assign.T @ feats[b, others].float()
            if p.combine == "target_plus_mean":
                merged = out[b, slots] + summed / counts.clamp(min=1)
            else:
                merged = (out[b, slots] + summed) / (counts + 1)
            out[b, slots] = merged
        return out.to(feats.dtype)

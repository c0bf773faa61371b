"""Assignment merge: every dropped token joins one kept token, which then stands for its group.

Each dropped valid token is assigned to the kept token with the largest cosine between their
vectors (``by: cosine``; ``source`` features or keys, first kept token on ties) or to the nearest
kept token on the same grid segment by the layout's (row, col) (``by: position``: squared distance,
first kept token on ties; a token off the grid, or on a segment where nothing was kept, goes to the
nearest kept token in sequence order). Every kept token gets a size s >= 1 (itself plus what it
absorbed; sizes sum to the row's token count). With ``bias: log_size`` a model placement adds
log(s) to the attention logits towards each kept visual token in layers >= K (proportional
attention, as in token merging for ViTs, Bolya et al., ICLR 2023), so pruning keeps the attention
mass the softmax normalises over; ``values: mean`` also replaces each kept token's features by the
mean over its group. Keep-all (every s = 1) changes nothing.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from ..component import Params
from ..tokens import VisualTokens
from .base import Merge, Merger

__all__ = ["AssignMerger", "AssignParams", "assign_by_cosine", "assign_by_position"]

_FAR = 1e9
"""Cost offset of a kept token off the dropped token's grid segment: only sequence order breaks it."""


class AssignParams(Params):
    by: Literal["cosine", "position"] = "cosine"
    """``cosine``: the most similar kept token (vectors of `source`); ``position``: the nearest kept token
    on the same grid segment by (row, col) of the layout."""
    source: Literal["features", "keys"] = "features"
    """Vectors compared when ``by: cosine``: the features the graph stages use, or the keys."""
    values: Literal["keep", "mean"] = "keep"
    """``keep``: kept tokens keep their own features; ``mean``: each becomes the mean over its group
    (itself and what it absorbed)."""
    bias: Literal["log_size", "none"] = "log_size"
    """``log_size``: attention towards a kept token counts it s times (log(s) added to the logits in the
    layers after pruning); ``none``: no attention bias."""


def assign_by_cosine(vectors: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``[B, N]`` kept slot of the most similar kept token per token (first on ties), fp32 inside."""
    v = F.normalize(vectors.float(), dim=-1)
    kept = torch.gather(v, 1, keep.unsqueeze(-1).expand(-1, -1, v.shape[-1]))
    return torch.bmm(v, kept.transpose(1, 2)).argmax(dim=-1)


def assign_by_position(coords: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``[B, N]`` kept slot nearest each token on its own grid segment (squared (row, col) distance),
    else nearest in sequence order; first kept slot on ties. `coords` ``[B, N, 3]`` (segment, row, col)."""
    B, N, _ = coords.shape
    c = coords.long()
    ck = torch.gather(c, 1, keep.unsqueeze(-1).expand(-1, -1, 3))  # [B, M, 3]
    on_grid = c[..., 1] >= 0
    same = (c[:, :, None, 0] == ck[:, None, :, 0]) & on_grid[:, :, None] & (ck[:, None, :, 1] >= 0)
    d2 = ((c[:, :, None, 1:] - ck[:, None, :, 1:]) ** 2).sum(-1).double()
    seq = (torch.arange(N, device=c.device)[None, :, None] - keep[:, None, :]).abs().double()
    cost = torch.where(same, d2, _FAR + seq)
    return cost.argmin(dim=-1)


class AssignMerger(Merger):
    """Assigns every dropped token to a kept one: sizes for proportional attention, optionally group means."""

    name = "assign"
    Params = AssignParams

    def requires(self) -> frozenset[str]:
        if self.params.by == "position":
            return frozenset({"layout"})
        return frozenset({"keys"}) if self.params.source == "keys" else frozenset()

    def replaces_features(self) -> bool:
        return self.params.values == "mean"

    def gives_sizes(self) -> bool:
        return True

    def size_bias(self) -> bool:
        return self.params.bias == "log_size"

    def assign(self, tokens: VisualTokens, keep: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` kept slot of every token: own slot for kept tokens, -1 at padding."""
        if self.params.by == "position":
            slots = assign_by_position(tokens.coords(), keep)
        else:
            slots = assign_by_cosine(tokens.keys if self.params.source == "keys" else tokens.features, keep)
        own = torch.arange(keep.shape[1], device=keep.device).expand_as(keep)
        slots = slots.scatter(1, keep, own)
        return slots.masked_fill(~tokens.valid_mask(), -1)

    def merge(self, tokens: VisualTokens, keep: torch.Tensor, roles: torch.Tensor | None,
              scores: torch.Tensor | None) -> Merge:
        return self.replay(tokens, keep, self.assign(tokens, keep))

    def replay(self, tokens: VisualTokens, keep: torch.Tensor, assignment: torch.Tensor) -> Merge:
        feats = tokens.features
        D = feats.shape[-1]
        out = torch.gather(feats, 1, keep.unsqueeze(-1).expand(-1, -1, D))
        if self.params.values == "keep":
            return Merge(out, torch.zeros_like(keep, dtype=torch.bool), assignment)
        onehot = F.one_hot(assignment.clamp(min=0), keep.shape[1]).float() * (assignment >= 0).unsqueeze(-1).float()
        sizes = onehot.sum(dim=1)  # [B, M]
        mean = torch.bmm(onehot.transpose(1, 2), feats.float()) / sizes.clamp(min=1).unsqueeze(-1)
        merged = sizes > 1
        out = torch.where(merged.unsqueeze(-1), mean.to(feats.dtype), out)
        return Merge(out, merged, assignment)

"""VisionZip's selection (Yang et al. 2025, ``dvlab-research/VisionZip``): dominant plus contextual targets.

Of ``keep`` tokens, ``c = contextual_count(keep)`` are contextual targets and ``keep - c`` dominant:
1. Dominant: the top ``keep - c`` tokens by score (VisionZip: the [CLS] attention summed over heads,
   given as ``VisualTokens.attention``; summing instead of averaging does not change the order).
2. The remaining valid tokens in index order; with ``step = max(1, n_rem // c)`` the targets are
   remaining positions ``0, step, 2*step, ...``, the first ``c`` of them.

The selector marks the targets (`Picks` roles), and the ``contextual`` merger folds every other token
into its most similar target: the split is declared here only. VisionZip keeps [CLS] as one of its
dominant tokens; Hugging Face LLaVA drops [CLS], so by default all ``keep - c`` dominant slots go to
patches (a documented deviation); ``cls_first: true`` with [CLS] as token 0 reproduces VisionZip.
"""

from __future__ import annotations

import torch
from pydantic import Field

from tokcompress.budget import share
from tokcompress.component import Params
from tokcompress.errors import InputError
from tokcompress.graphs.base import Graph
from tokcompress.selectors.base import KEEP, TARGET, Picks, Selector, rank_descending
from tokcompress.tokens import VisualTokens

__all__ = ["VisionZipSelector", "VisionZipParams", "contextual_count"]


class VisionZipParams(Params):
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
    return share(keep, contextual_ratio)


class VisionZipSelector(Selector):
    """Top-score dominant tokens, then evenly strided targets among the rest (index order)."""

    name = "visionzip"
    Params = VisionZipParams
    marks_roles = True

    def select(self, tokens: VisualTokens, scores: torch.Tensor, graph: Graph | None, keep: int) -> Picks:
        p = self.params
        valid = tokens.valid_mask()
        c = contextual_count(keep, p.contextual, p.contextual_ratio)
        n_dom = keep - c
        s = scores.float()
        if p.cls_first:
            if n_dom == 0:
                raise InputError(
                    f"selector 'visionzip' with cls_first=True needs a dominant slot for [CLS], but keep={keep} "
                    f"leaves {c} contextual and 0 dominant tokens; lower contextual / contextual_ratio"
                )
            if not bool(valid[:, 0].all()):
                raise InputError("selector 'visionzip' with cls_first=True: token 0 ([CLS]) is padding in some row")
            s = s.clone()
            s[:, 0] = float("inf")
        dominant = rank_descending(s, valid)[:, :n_dom]
        roles = torch.full((tokens.batch_size, keep), KEEP, dtype=torch.long, device=dominant.device)
        roles[:, n_dom:] = TARGET
        if c == 0:
            return Picks(dominant, roles)
        remaining = valid.scatter(1, dominant, False)
        rows = []
        for b in range(tokens.batch_size):
            rest = remaining[b].nonzero().flatten()
            step = max(1, len(rest) // c)
            rows.append(torch.cat([dominant[b], rest[::step][:c]]))
        return Picks(torch.stack(rows), roles)

"""VisionZip's selection (Yang et al. 2025, ``dvlab-research/VisionZip``): dominant plus contextual targets.

Of ``keep`` tokens, ``c = contextual_count(keep)`` are contextual targets and ``keep - c`` dominant:
1. Dominant: the top ``keep - c`` tokens by score (VisionZip: the [CLS] attention summed over heads,
   given as ``VisualTokens.attention``; summing instead of averaging does not change the order).
2. The remaining valid tokens in index order; with ``step = max(1, n_rem // c)`` the targets are
   remaining positions ``0, step, 2*step, ...``, the first ``c`` of them.

The ``contextual`` merger then folds every other token into its most similar target; give it the
same ``contextual`` / ``contextual_ratio`` / ``cls_first``. VisionZip keeps [CLS] as one of its
dominant tokens; Hugging Face LLaVA drops [CLS], so by default all ``keep - c`` dominant slots go to
patches (a documented deviation); ``cls_first: true`` with [CLS] as token 0 reproduces VisionZip.
"""

from __future__ import annotations

import torch

from tokcompress.errors import InputError
from tokcompress.graphs.base import Graph
from tokcompress.mergers.contextual import ContextualParams, contextual_count
from tokcompress.selectors.base import Selector, rank_descending
from tokcompress.tokens import VisualTokens

__all__ = ["VisionZipSelector"]


class VisionZipSelector(Selector):
    """Top-score dominant tokens, then evenly strided targets among the rest (index order)."""

    name = "visionzip"
    Params = ContextualParams

    def select(self, tokens: VisualTokens, scores: torch.Tensor, graph: Graph | None, keep: int) -> torch.Tensor:
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
        if c == 0:
            return dominant
        remaining = valid.scatter(1, dominant, False)
        rows = []
        for b in range(tokens.batch_size):
            rest = remaining[b].nonzero().flatten()
            step = max(1, len(rest) // c)
            rows.append(torch.cat([dominant[b], rest[::step][:c]]))
        return torch.stack(rows)

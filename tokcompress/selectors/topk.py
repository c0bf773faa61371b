"""Top-k by score (FastV; VisionZip's dominant tokens)."""

from __future__ import annotations

import torch

from ..graphs.base import Graph
from ..tokens import VisualTokens
from .base import Selector, rank_descending


class TopKSelector(Selector):
    """The `keep` highest-scoring valid tokens; ties to the lower index."""

    name = "topk"

    def select(self, tokens: VisualTokens, scores: torch.Tensor, graph: Graph | None, keep: int) -> torch.Tensor:
        return rank_descending(scores, tokens.valid_mask())[:, :keep]

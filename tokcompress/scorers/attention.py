"""Attention received from the query token (FastV, D2Pruner: last prompt token at layer K-1)."""

from __future__ import annotations

import torch

from ..tokens import VisualTokens
from .base import Scorer


class AttentionScorer(Scorer):
    """Scores are `VisualTokens.attention` as given (already head-averaged by the integration)."""

    name = "attention"

    def requires(self) -> frozenset[str]:
        return frozenset({"attention"})

    def score(self, tokens: VisualTokens) -> torch.Tensor:
        return tokens.attention.float()

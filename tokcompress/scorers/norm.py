"""Vector-norm scorers: key norms (DART's pivots use the L1 norm) and feature norms."""

from __future__ import annotations

from typing import Literal

import torch

from ..component import Params
from ..tokens import VisualTokens
from .base import Scorer


class NormParams(Params):
    p: Literal[1, 2] = 1
    """Order of the vector norm (1: L1, 2: L2)."""


class KeyNormScorer(Scorer):
    """``||k_i||_p`` of each visual token's key vector, computed in fp32."""

    name = "key_norm"
    Params = NormParams

    def requires(self) -> frozenset[str]:
        return frozenset({"keys"})

    def score(self, tokens: VisualTokens) -> torch.Tensor:
        return torch.linalg.vector_norm(tokens.keys.float(), ord=self.params.p, dim=-1)


class FeatureNormScorer(Scorer):
    """``||h_i||_p`` of each visual token's features, computed in fp32."""

    name = "feature_norm"
    Params = NormParams

    def score(self, tokens: VisualTokens) -> torch.Tensor:
        return torch.linalg.vector_norm(tokens.features.float(), ord=self.params.p, dim=-1)

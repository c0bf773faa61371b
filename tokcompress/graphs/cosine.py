"""Cosine similarity between token vectors (DivPrune, CDPruner, DART's pivot-to-pool similarity)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from ..component import Params
from ..tokens import VisualTokens
from .base import Graph, GraphBuilder


class CosineGraph(Graph):
    """Rows of ``cos(x_i, x_j)`` from unit-normalised fp32 vectors ``[B, N, D]``."""

    kind = "similarity"

    def __init__(self, vectors: torch.Tensor) -> None:
        super().__init__(vectors.shape[0], vectors.shape[1], vectors.device)
        self.unit = F.normalize(vectors.float(), dim=-1)

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        picked = torch.gather(self.unit, 1, index.unsqueeze(-1).expand(-1, -1, self.unit.shape[-1]))
        return torch.bmm(picked, self.unit.transpose(1, 2))


class CosineParams(Params):
    source: Literal["features", "keys", "image_embeds"] = "features"
    """Which `VisualTokens` field supplies the vectors."""


class CosineGraphBuilder(GraphBuilder):
    """Similarity graph: cosine of `source` vectors, always in fp32 whatever the input dtype."""

    name = "cosine"
    provides = "similarity"
    Params = CosineParams

    def requires(self) -> frozenset[str]:
        return frozenset() if self.params.source == "features" else frozenset({self.params.source})

    def build(self, tokens: VisualTokens) -> CosineGraph:
        return CosineGraph(getattr(tokens, self.params.source))

"""Selector: which tokens to keep, given scores and/or a graph. Ties go to the lower index."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch

from ..component import Component
from ..graphs.base import Graph, GraphKind
from ..tokens import VisualTokens

__all__ = ["Selector", "rank_descending"]


class Selector(Component):
    """`needs_scores` / `needs_graph` are checked when a pruner is built, naming what is missing."""

    kind: ClassVar[str] = "selector"
    needs_scores: ClassVar[bool] = True
    needs_graph: ClassVar[GraphKind | None] = None

    @abstractmethod
    def select(
        self, tokens: VisualTokens, scores: torch.Tensor | None, graph: Graph | None, keep: int
    ) -> torch.Tensor:
        """LongTensor ``[B, keep]`` of distinct valid token indices, any order (the pipeline sorts).

        Must honour ``tokens.valid_mask()``: padding positions are never selected.
        """


def rank_descending(scores: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Indices ``[B, N]`` by descending score; equal scores keep ascending index; invalid last."""
    s = scores.float()
    if valid is not None:
        s = s.masked_fill(~valid, float("-inf"))
    return torch.sort(s, dim=-1, descending=True, stable=True).indices

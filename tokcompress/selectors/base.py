"""Selector: which tokens to keep, given scores and/or a graph. Ties go to the lower index.

A selector returns the kept indices, or `Picks` when it also tells the merge step what each kept
token is for (`KEEP`: kept as is; `TARGET`: absorbs dropped tokens). A split such as VisionZip's
dominant/contextual tokens is then declared once, in the selector, and the merger reads the roles.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..component import Component
from ..graphs.base import Graph, GraphKind
from ..tokens import VisualTokens

__all__ = ["Selector", "Picks", "KEEP", "TARGET", "rank_descending"]

KEEP = 0
"""Role of a kept token that keeps its own features."""
TARGET = 1
"""Role of a kept token that a merger may fold dropped tokens into."""


@dataclass(frozen=True)
class Picks:
    """Kept indices ``[B, k]`` (any order) and the role of each (`KEEP` or `TARGET`), same shape."""

    indices: torch.Tensor
    roles: torch.Tensor


class Selector(Component):
    """`needs_scores()` and `needs_graph` are checked when a pruner is built, naming what is missing.

    `marks_roles`: the selector returns `Picks` with roles (a merger that merges into marked targets
    needs one).
    """

    kind: ClassVar[str] = "selector"
    needs_graph: ClassVar[GraphKind | None] = None
    marks_roles: ClassVar[bool] = False

    def needs_scores(self) -> bool:
        """Whether `select` reads scores (then the spec needs a scorer)."""
        return True

    @abstractmethod
    def select(
        self, tokens: VisualTokens, scores: torch.Tensor | None, graph: Graph | None, keep: int
    ) -> "torch.Tensor | Picks":
        """LongTensor ``[B, keep]`` of distinct valid token indices, any order (the pipeline sorts),
        or `Picks` with their roles.

        Must honour ``tokens.valid_mask()``: padding positions are never selected.
        """


def rank_descending(scores: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Indices ``[B, N]`` by descending score; equal scores keep ascending index; invalid last."""
    s = scores.float()
    if valid is not None:
        s = s.masked_fill(~valid, float("-inf"))
    return torch.sort(s, dim=-1, descending=True, stable=True).indices

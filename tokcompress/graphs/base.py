"""GraphBuilder and Graph: relations between the tokens of each row, computed lazily by rows.

Selectors need only a few rows of an N x N relation (the neighbours of picked tokens, the
similarity of a pivot to the rest), so a `Graph` computes rows on demand; `dense()` assembles the
whole matrix in row blocks for methods and tests that need it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

import torch

from ..component import Component
from ..tokens import VisualTokens

GraphKind = Literal["similarity", "adjacency"]


class Graph(ABC):
    """``kind="similarity"``: float weights in fp32. ``kind="adjacency"``: bool edges, no self loops."""

    kind: ClassVar[GraphKind]

    def __init__(self, batch_size: int, num_tokens: int, device: torch.device) -> None:
        self.batch_size = batch_size
        self.num_tokens = num_tokens
        self.device = device

    @abstractmethod
    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """Rows for tokens `index` (LongTensor ``[B, R]``): ``[B, R, N]`` (fp32 or bool)."""

    def dense(self, block_size: int = 1024) -> torch.Tensor:
        """The full ``[B, N, N]`` matrix, computed ``block_size`` rows at a time."""
        idx = torch.arange(self.num_tokens, device=self.device).expand(self.batch_size, -1)
        return torch.cat([self.rows(idx[:, s : s + block_size]) for s in range(0, self.num_tokens, block_size)], 1)


class GraphBuilder(Component):
    kind: ClassVar[str] = "graph"
    provides: ClassVar[GraphKind]

    @abstractmethod
    def build(self, tokens: VisualTokens) -> Graph:
        """A `Graph` over all N tokens of each row (selectors restrict it to their candidates)."""

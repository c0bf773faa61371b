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
    symmetric: ClassVar[bool] = False
    """``G_ij == G_ji`` by definition: `dense` is then exactly symmetric, and a pass over every pair
    may read only the blocks on and above the diagonal (`row_range` with ``column_start``)."""

    def __init__(self, batch_size: int, num_tokens: int, device: torch.device) -> None:
        self.batch_size = batch_size
        self.num_tokens = num_tokens
        self.device = device

    @abstractmethod
    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """Rows for tokens `index` (LongTensor ``[B, R]``): ``[B, R, N]`` (fp32 or bool)."""

    def row_range(self, start: int, stop: int, column_start: int = 0) -> torch.Tensor:
        """Rows of tokens ``start .. stop - 1`` in every batch row, from column `column_start` on:
        ``[B, stop - start, N - column_start]``. Graphs whose rows are a product override it to slice
        instead of gathering, and to compute only the columns asked for."""
        idx = torch.arange(start, stop, device=self.device).expand(self.batch_size, -1)
        return self.rows(idx)[..., column_start:]

    def batch_rows(self, batch: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Rows of tokens `index` (``[b, R]``) in the batch rows `batch` (``[b]``): ``[b, R, N]``.
        This default computes `rows` for the whole batch; graphs that can, compute only those rows."""
        full = torch.zeros(self.batch_size, index.shape[1], dtype=torch.long, device=self.device)
        full[batch] = index
        return self.rows(full)[batch]

    def batch_row(self, b: int) -> "Graph":
        """The graph of batch row `b` alone (batch size 1), for selectors that take a large batch one row
        at a time. This default reads through `batch_rows`; graphs built from per-row data override it
        to hold row `b`'s data only."""
        return RowOfBatch(self, b)

    def diagonal(self) -> torch.Tensor | None:
        """``[B, N]`` self-relations ``G_ii`` exactly as `rows` gives them, or None when they would
        cost a pass over every row (selectors then use the kind's nominal value)."""
        return None

    def dense(self, block_size: int = 1024) -> torch.Tensor:
        """The full ``[B, N, N]`` matrix, computed ``block_size`` rows at a time."""
        return torch.cat([self.row_range(s, e) for s, e in row_blocks(self.num_tokens, block_size)], 1)


class RowOfBatch(Graph):
    """Batch row `b` of `parent` as a graph of batch size 1 (`Graph.batch_row`'s default)."""

    def __init__(self, parent: Graph, b: int) -> None:
        super().__init__(1, parent.num_tokens, parent.device)
        self.kind, self.symmetric = parent.kind, parent.symmetric  # type: ignore[misc]  (the parent's)
        self.parent, self.b = parent, b
        self._batch = torch.tensor([b], device=parent.device)

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        return self.parent.batch_rows(self._batch, index)

    def diagonal(self) -> torch.Tensor | None:
        diagonal = self.parent.diagonal()
        return None if diagonal is None else diagonal[self.b : self.b + 1]


MIN_GEMM_ROWS = 8
"""Products of fewer rows go through other kernels (a matrix-vector product for one row) whose
rounding differs from the full matrix product's; blocks keep at least this many rows where they can."""


def row_blocks(n: int, size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive blocks of `size` rows over ``n``; a remainder shorter than
    `MIN_GEMM_ROWS` joins the block before it (when `size` itself is not shorter)."""
    bounds = [(s, min(s + size, n)) for s in range(0, n, size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < MIN_GEMM_ROWS <= size:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def take_rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``t[b, index[b]]`` for ``t`` ``[B, N, ...]`` and ``index`` ``[B, R]``: an index_select on the
    flattened batch when ``t`` is contiguous, several times faster than gather with an expanded index
    (which also materialises an int64 index as large as the result)."""
    B, N = t.shape[:2]
    if t.is_contiguous():
        flat = (index + torch.arange(B, device=index.device).unsqueeze(1) * N).flatten()
        return t.reshape(B * N, *t.shape[2:]).index_select(0, flat).view(*index.shape, *t.shape[2:])
    return t[torch.arange(B, device=index.device).unsqueeze(1), index]


class GraphBuilder(Component):
    kind: ClassVar[str] = "graph"
    provides: ClassVar[GraphKind]

    @abstractmethod
    def build(self, tokens: VisualTokens) -> Graph:
        """A `Graph` over all N tokens of each row (selectors restrict it to their candidates)."""

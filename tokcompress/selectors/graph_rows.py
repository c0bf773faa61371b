"""Row access to a lazy `Graph` for greedy selectors: dense when small, on demand when large.

Greedy diversity selectors (max-min, DPP) read one graph row per pick. For small N the whole matrix
is cheaper to build once with a matrix product than row by row; for large N it would not fit, so
rows are computed when asked and memory stays ``O(B * block_size * N)``.
"""

from __future__ import annotations

from typing import Iterator

import torch
from pydantic import Field

from ..component import Params
from ..graphs.base import Graph

__all__ = ["RowParams", "GraphRows"]


class RowParams(Params):
    dense_max_bytes: int = Field(1 << 28, ge=0)
    """Build the whole ``[B, N, N]`` fp32 matrix once when it takes at most this many bytes (default
    256 MiB: N = 2880 at batch 8); above it, rows are computed on demand. The indices are the same
    either way except where a selection hinges on rounding noise."""
    block_size: int = Field(1024, ge=1)
    """Rows per block when a pass over every row is needed (dense build, nearest-neighbour scan)."""


class GraphRows:
    """Rows of `graph` for index tensors, from a dense copy when it fits in `dense_max_bytes`."""

    def __init__(self, graph: Graph, params: RowParams) -> None:
        self.graph = graph
        self.block_size = params.block_size
        n, b = graph.num_tokens, graph.batch_size
        self.dense = graph.dense(params.block_size) if b * n * n * 4 <= params.dense_max_bytes else None

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """``[B, R, N]`` fp32 rows for ``index`` ``[B, R]``."""
        if self.dense is None:
            return self.graph.rows(index).float()
        n = self.dense.shape[-1]
        return torch.gather(self.dense, 1, index.unsqueeze(-1).expand(-1, -1, n))

    def row(self, index: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` row of token ``index[b]`` in each batch row."""
        return self.rows(index.unsqueeze(1)).squeeze(1)

    def blocks(self) -> Iterator[tuple[int, torch.Tensor]]:
        """``(start, rows [B, R, N])`` over every row in order, ``block_size`` rows at a time."""
        b, n = self.graph.batch_size, self.graph.num_tokens
        for start in range(0, n, self.block_size):
            stop = min(start + self.block_size, n)
            if self.dense is not None:
                yield start, self.dense[:, start:stop]
            else:
                idx = torch.arange(start, stop, device=self.graph.device).expand(b, -1)
                yield start, self.graph.rows(idx).float()

"""Row access to a lazy `Graph` for greedy selectors: dense when it fits, blocks and batches when not.

Greedy diversity selectors (max-min, DPP) read one graph row per pick. When the whole matrix fits the
memory budget it is built once with matrix products and each pick reads its row, O(N). When it does
not, passes over every row go block by block (memory ``O(B * block_size * N)``), and the rows picks
need are computed a batch at a time: the pick's own and those of the tokens most likely to be picked
next, in one matrix product that costs about what a few single rows do (a single row is a
memory-bound matrix-vector product).

Batches (`by_row`): on CPU each row is selected alone. The per-row work (the N x N pass, the picks'
rows) is the same either way, so running rows together saves nothing there, while it multiplies the
working set (unit vectors, dense matrix, per-pick state) and so the cache misses and page faults. On
other devices rows run together, one kernel launch per step for the whole batch, unless the batch's
dense matrix would exceed the budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import torch
from pydantic import Field

from ..component import Params
from ..graphs.base import Graph, row_blocks, take_rows
from ..tokens import VisualTokens

if TYPE_CHECKING:
    from .base import Selector

__all__ = ["RowParams", "GraphRows", "by_row", "select_by_row"]


class RowParams(Params):
    dense_max_bytes: int = Field(1 << 28, ge=0)
    """Memory budget of the similarity matrix: build the whole ``[B, N, N]`` fp32 matrix once when it
    takes at most this many bytes (default 256 MiB: N = 8192 for one row, which is what a CPU batch
    needs, selected row by row; N = 2880 at batch 8 on other devices); above it, rows are computed
    in blocks and on demand. The indices are the same either way except where a selection hinges on
    rounding noise (see `tokcompress.graphs.cosine` for when the bits agree)."""
    block_size: int = Field(128, ge=1)
    """Rows per block when a pass over every pair is needed (dense build, nearest-neighbour scan). A
    symmetric graph's pass multiplies ``(1 + block_size / N) / 2`` of the full product; smaller
    blocks run the matrix product less efficiently (at D = 4096, 128 was fastest at N = 576 and
    within 3% of 256 and 512 at N = 2880). Without the dense matrix a block takes
    ``B * block_size * N * 4`` bytes."""
    fetch_rows: int = Field(32, ge=1)
    """Without the dense matrix, on CPU: rows computed together when a pick's row is not at hand, the
    pick's own and those of the best candidates for the next picks. At D = 4096 and N >= 2880 a
    product of 32 rows costs about what 2 or 3 single rows do (each single row re-reads all N
    vectors); most picks then find their row computed (max-min on random tokens: 9 batches for 64
    picks of 576, 20 for 288 of 2880). 1 computes one row per pick. On CUDA rows are always computed
    one per pick: checking a cache would need a host sync per pick."""


def dense_fits(graph: Graph, params: RowParams) -> bool:
    """Whether the ``[B, N, N]`` fp32 matrix of `graph` fits `params.dense_max_bytes`."""
    return graph.batch_size * graph.num_tokens**2 * 4 <= params.dense_max_bytes


def by_row(graph: Graph, params: RowParams) -> bool:
    """Whether a batch is selected one row at a time (see the module docstring)."""
    return graph.batch_size > 1 and (graph.device.type == "cpu" or not dense_fits(graph, params))


def select_by_row(selector: "Selector", tokens: VisualTokens, scores: torch.Tensor | None, graph: Graph,
                  keep: int) -> torch.Tensor:
    """`selector.select` on each batch row alone, concatenated. Each row then holds only its own working
    set: at N = 16384, D = 4096 a batch of 8 would otherwise normalise 2 GiB of unit vectors at once
    and, for DPP, keep ``B * keep * N`` Cholesky entries."""
    return torch.cat([
        selector.select(tokens.rows([b]), None if scores is None else scores[b : b + 1], graph.batch_row(b), keep)
        for b in range(graph.batch_size)
    ])


class GraphRows:
    """Rows of `graph` for index tensors, from a dense copy when allowed (`dense`) and within
    `dense_max_bytes`."""

    def __init__(self, graph: Graph, params: RowParams, dense: bool = True) -> None:
        self.graph = graph
        self.block_size = params.block_size
        n, b = graph.num_tokens, graph.batch_size
        self.dense = graph.dense(params.block_size) if dense and dense_fits(graph, params) else None
        self.fetch = min(params.fetch_rows, n) if graph.device.type == "cpu" else 1
        self._offsets = torch.arange(b, device=graph.device) * n  # row b of the flattened dense matrix
        self._cand: torch.Tensor | None = None  # [B, fetch] tokens whose rows are in _cache
        self._cache: torch.Tensor | None = None  # [B, fetch, N]

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """``[B, R, N]`` fp32 rows for ``index`` ``[B, R]``."""
        if self.dense is None:
            return self.graph.rows(index).float()
        return take_rows(self.dense, index)

    def row(self, index: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` row of token ``index[b]`` in each batch row."""
        if self.dense is None:
            return self.graph.rows(index.unsqueeze(1)).squeeze(1).float()
        return self.dense.view(-1, self.dense.shape[-1]).index_select(0, index + self._offsets)

    def pick_row(self, index: torch.Tensor, priority: torch.Tensor) -> torch.Tensor:
        """`row` for a greedy pick. Without the dense matrix (and with ``fetch_rows > 1``), rows come
        from a cache refilled, for the batch rows that miss, with the rows of ``index`` and of the
        ``fetch_rows - 1`` tokens of highest `priority` (``[B, N]``, the selector's criterion for its
        next pick)."""
        if self.dense is not None or self.fetch == 1:
            return self.row(index)
        B, N = priority.shape
        if self._cand is None:
            self._cand = torch.full((B, self.fetch), -1, dtype=torch.long, device=index.device)
            self._cache = torch.empty(B, self.fetch, N, device=index.device)
        hit = self._cand == index.unsqueeze(1)
        miss = ~hit.any(dim=1)
        if bool(miss.any()):
            rows_b = miss.nonzero().flatten()
            best = priority[rows_b].topk(self.fetch - 1, dim=1).indices
            cand = torch.cat([index[rows_b].unsqueeze(1), best], dim=1)
            self._cand[rows_b] = cand
            self._cache[rows_b] = self.graph.batch_rows(rows_b, cand).float()
            hit = self._cand == index.unsqueeze(1)
        slot = hit.to(torch.uint8).argmax(dim=1)
        return self._cache[torch.arange(B, device=index.device), slot]

    def blocks(self) -> Iterator[tuple[int, torch.Tensor]]:
        """``(start, rows [B, R, N])`` over every row in order, ``block_size`` rows at a time."""
        for start, stop in row_blocks(self.graph.num_tokens, self.block_size):
            if self.dense is not None:
                yield start, self.dense[:, start:stop]
            else:
                yield start, self.graph.row_range(start, stop).float()

    def upper_blocks(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        """``(start, stop, rows [B, R, N - start])`` computed from the graph: each row block from its
        diagonal on, so that for a `symmetric` graph every pair is computed once (about half the work
        of `blocks`)."""
        for start, stop in row_blocks(self.graph.num_tokens, self.block_size):
            yield start, stop, self.graph.row_range(start, stop, start).float()

"""Cosine similarity between token vectors (DivPrune, CDPruner, DART's pivot-to-pool similarity).

Every similarity is an entry of the product ``U @ U.T`` of unit vectors, as the methods' reference
code computes it. On CPU, MKL's GEMM has in practice given each entry the same bits whatever the
shape of the product and wherever the entry sits in it (checked from a few dozen tokens and 8 rows
up; tiny matrices use other kernels), so rows computed in blocks, in batches of candidates or as the
whole matrix agree bit for bit and the matrix is exactly symmetric; a single row goes through a
matrix-vector kernel that may round differently. Selectors rely on this for speed, not correctness.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from ..component import Params
from ..tokens import VisualTokens
from .base import MIN_GEMM_ROWS, Graph, GraphBuilder, row_blocks, take_rows

DIAGONAL_BLOCK = 2 * MIN_GEMM_ROWS
"""Rows per product when computing the diagonal: ``N * 16 * D`` multiply-adds instead of ``N^2 D``,
with enough rows that ``S_ii`` has the dense matrix's bits."""


class CosineGraph(Graph):
    """Rows of ``cos(x_i, x_j)`` from unit-normalised fp32 vectors ``[B, N, D]``."""

    kind = "similarity"
    symmetric = True

    def __init__(self, vectors: torch.Tensor) -> None:
        super().__init__(vectors.shape[0], vectors.shape[1], vectors.device)
        self.vectors = vectors
        self._unit: torch.Tensor | None = None

    @property
    def unit(self) -> torch.Tensor:
        """``[B, N, D]`` fp32 unit vectors, normalised on first use: `dense` alone never needs every
        batch row's at once (a fresh B x N x D buffer costs page faults on every call, and memory)."""
        if self._unit is None:
            self._unit = F.normalize(self.vectors.float(), dim=-1)
        return self._unit

    def _unit_row(self, b: int) -> torch.Tensor:
        """Batch row `b`'s unit vectors ``[N, D]``, the same bits as ``unit[b]``."""
        return self._unit[b] if self._unit is not None else F.normalize(self.vectors[b].float(), dim=-1)

    def batch_row(self, b: int) -> "CosineGraph":
        """Row `b`'s vectors only (a view): its unit vectors are normalised for that row alone."""
        row = CosineGraph(self.vectors[b : b + 1])
        row._unit = None if self._unit is None else self._unit[b : b + 1]
        return row

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        return torch.bmm(take_rows(self.unit, index), self.unit.transpose(1, 2))

    def row_range(self, start: int, stop: int, column_start: int = 0) -> torch.Tensor:
        return torch.bmm(self.unit[:, start:stop], self.unit[:, column_start:].transpose(1, 2))

    def batch_rows(self, batch: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.unit[b][i] @ self.unit[b].T for b, i in zip(batch.tolist(), index)])

    def diagonal(self) -> torch.Tensor:
        n, r = self.num_tokens, min(DIAGONAL_BLOCK, self.num_tokens)
        out = torch.empty(self.batch_size, n, device=self.device)
        for s in range(0, n, r):
            s = min(s, n - r)  # the last block overlaps the previous one rather than shrink below r rows
            block = self.unit[:, s : s + r]
            out[:, s : s + r] = torch.diagonal(torch.bmm(block, block.transpose(1, 2)), dim1=1, dim2=2)
        return out

    def dense(self, block_size: int = 1024) -> torch.Tensor:
        """Only the row blocks' parts on and right of the diagonal are multiplied, written in place and
        mirrored below it: about half the multiply-adds of ``U @ U.T`` (``(1 + block_size / N) / 2``),
        no gathered copy of the vectors, and an exactly symmetric matrix."""
        n = self.num_tokens
        out = torch.empty(self.batch_size, n, n, device=self.device)
        for b in range(self.batch_size):
            u = self._unit_row(b)
            for s, e in row_blocks(n, block_size):
                torch.mm(u[s:e], u[s:].T, out=out[b, s:e, s:])
                diag = out[b, s:e, s:e]
                diag.copy_(diag.triu() + diag.triu(1).T)
                out[b, e:, s:e] = out[b, s:e, e:].T
        return out


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

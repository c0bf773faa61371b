"""Greedy MAP inference of a conditional DPP (CDPruner), with the fast incremental Cholesky update.

Kernel ``L = diag(r) S diag(r)``: `r` the scores (CDPruner: instruction relevance), `S` the graph's
similarity. Fast greedy MAP (Chen, Zhang & Zhou, NeurIPS 2018): ``d2_i = L_ii``; repeat `keep` times:
``j = argmax d2`` (first index on ties), ``e_i = (L_ji - <c_j, c_i>) / sqrt(d2_j)`` for every i,
append ``e_i`` to ``c_i``, ``d2_i -= e_i^2``, then ``d2_j = -inf``. One kernel row per pick, so the
N x N kernel is never needed: its rows are computed for the picks (and the likely next picks) only,
about ``keep`` of N rows instead of all, unless the selection reads many rows anyway (`dense_keep_ratio`).
"""

from __future__ import annotations

import torch
from pydantic import Field

from ..graphs.base import Graph
from ..tokens import VisualTokens
from .base import Selector, rank_descending
from .graph_rows import GraphRows, RowParams, by_row, select_by_row


class DPPParams(RowParams):
    theta: float | None = Field(None, gt=0, lt=1)
    """Relevance weight: None uses ``r`` as given (CDPruner as released); a value applies the
    commented-out ``r <- exp(theta / (2 (1 - theta)) * r)`` of CDPruner's code (0.5 there)."""
    dense_keep_ratio: float = Field(0.25, ge=0, le=1)
    """Build the dense similarity (within `dense_max_bytes`) only when ``keep >= dense_keep_ratio * N``
    or on CUDA; below it the rows of the picks are computed in batches of `fetch_rows` (see
    `GraphRows`), about ``keep`` rows instead of N. Measured on CPU at D = 4096 (fetched / dense
    time): N = 576: 0.67 at keep N/9, 0.9 at N/4, 1.35 at N/2; N = 2880: 0.44, 1.04, 1.08."""
    fetch_rows: int = Field(64, ge=1)
    """`RowParams.fetch_rows`, 64 here: DPP's next picks are its top ``d2`` tokens more often than
    max-min's, so larger batches waste few rows (random tokens: 1 batch for 64 picks of 576, 5 for
    288 of 2880) and run faster (0.7x the time of 32 at N = 576, 0.85x at 2880)."""


class DPPSelector(Selector):
    """`keep` tokens maximising ``det(L_Y)`` greedily; scores are the per-token quality `r`.

    Numerics, documented: ``L_ii = r_i S_ii r_i`` with ``S_ii`` as the graph computes it (the dense
    matrix's diagonal, as the reference reads it; exactly 1 for a graph that cannot give its
    diagonal cheaply). Once ``keep`` approaches the rank of the features (more picks than feature
    dimensions, or duplicate tokens), the remaining ``d2`` are rounding noise and picks may differ
    from the reference's; if a row's best ``d2`` is not positive (where the reference takes ``sqrt``
    of it and produces NaN), the rest of that row is filled by descending score. Returns the picks in
    pick order; the loop has no host sync, so it runs on CUDA without stalls.
    """

    name = "dpp"
    needs_graph = "similarity"
    Params = DPPParams

    def select(self, tokens: VisualTokens, scores: torch.Tensor, graph: Graph, keep: int) -> torch.Tensor:
        if by_row(graph, self.params):
            return select_by_row(self, tokens, scores, graph, keep)
        valid = tokens.valid_mask()
        invalid = ~valid
        B, N = valid.shape
        r = scores.float().masked_fill(invalid, 0.0)
        if self.params.theta is not None:
            r = torch.exp(self.params.theta / (2 * (1 - self.params.theta)) * r).masked_fill(invalid, 0.0)
        dense = graph.device.type != "cpu" or keep >= self.params.dense_keep_ratio * N
        reader = GraphRows(graph, self.params, dense=dense)
        rows_b = torch.arange(B, device=valid.device)
        cis = torch.zeros(B, keep, N, device=valid.device)
        d2 = (r * self_similarity(reader) * r).masked_fill(invalid, float("-inf"))
        # Fallback once a row's kernel is exhausted: descending score, ties to the lower index. As a
        # key: -(rank in that order), -inf at padding and taken tokens, so argmax is the next one.
        position = torch.arange(N, device=valid.device, dtype=r.dtype).expand(B, N)
        fallback = torch.empty_like(r).scatter_(1, rank_descending(r, valid), -position).masked_fill_(invalid, float("-inf"))
        exhausted = torch.zeros(B, dtype=torch.bool, device=valid.device)
        picks = []
        for t in range(keep):
            best, j = d2.max(dim=-1)
            exhausted |= ~(best > 0)
            j = torch.where(exhausted, fallback.argmax(dim=-1), j)
            picks.append(j)
            fallback.scatter_(1, j.unsqueeze(1), float("-inf"))
            if t + 1 == keep:
                break
            dj = torch.where(exhausted, torch.ones_like(best), d2.gather(1, j.unsqueeze(1)).squeeze(1))
            l_j = (r.gather(1, j.unsqueeze(1)) * reader.pick_row(j, d2)) * r  # kernel row L_j. = (r_j * S_j.) * r
            if t:
                c_j = cis[rows_b, :t, j]  # [B, t]
                l_j -= torch.bmm(c_j.unsqueeze(1), cis[:, :t]).squeeze(1)
            e = l_j.div_(torch.sqrt(dj).unsqueeze(1)).masked_fill_(invalid | exhausted.unsqueeze(1), 0.0)
            cis[:, t] = e
            d2.sub_(e * e).scatter_(1, j.unsqueeze(1), float("-inf"))
        return torch.stack(picks, dim=1)


def self_similarity(reader: GraphRows) -> torch.Tensor | float:
    """``S_ii``: the dense matrix's own diagonal when it was built (rounded like the reference's
    kernel), else the graph's `diagonal` (the same bits for a cosine graph), else exactly 1 (a
    cosine graph's value; reading it from rows would cost a pass over all rows)."""
    if reader.dense is not None:
        return torch.diagonal(reader.dense, dim1=1, dim2=2)
    diagonal = reader.graph.diagonal()
    return 1.0 if diagonal is None else diagonal

"""Greedy MAP inference of a conditional DPP (CDPruner), with the fast incremental Cholesky update.

Kernel ``L = diag(r) S diag(r)``: `r` the scores (CDPruner: instruction relevance), `S` the graph's
similarity. Fast greedy MAP (Chen, Zhang & Zhou, NeurIPS 2018): ``d2_i = L_ii``; repeat `keep` times:
``j = argmax d2`` (first index on ties), ``e_i = (L_ji - <c_j, c_i>) / sqrt(d2_j)`` for every i,
append ``e_i`` to ``c_i``, ``d2_i -= e_i^2``, then ``d2_j = -inf``. One graph row per pick, so the
N x N kernel is never needed.
"""

from __future__ import annotations

import torch
from pydantic import Field

from ..graphs.base import Graph
from ..tokens import VisualTokens
from .base import Selector, rank_descending
from .graph_rows import GraphRows, RowParams


class DPPParams(RowParams):
    theta: float | None = Field(None, gt=0, lt=1)
    """Relevance weight: None uses ``r`` as given (CDPruner as released); a value applies the
    commented-out ``r <- exp(theta / (2 (1 - theta)) * r)`` of CDPruner's code (0.5 there)."""


class DPPSelector(Selector):
    """`keep` tokens maximising ``det(L_Y)`` greedily; scores are the per-token quality `r`.

    Numerics, documented: ``L_ii = r_i S_ii r_i`` with ``S_ii`` read from the dense matrix when it is
    built (as the reference does) and taken as exactly 1 otherwise (a cosine graph's value). Once
    ``keep`` approaches the rank of the features (more picks than feature dimensions, or duplicate
    tokens), the remaining ``d2`` are rounding noise and picks may differ from the reference's; if a
    row's best ``d2`` is not positive (where the reference takes ``sqrt`` of it and produces NaN), the
    rest of that row is filled by descending score.
    """

    name = "dpp"
    needs_graph = "similarity"
    Params = DPPParams

    def select(self, tokens: VisualTokens, scores: torch.Tensor, graph: Graph, keep: int) -> torch.Tensor:
        valid = tokens.valid_mask()
        B, N = valid.shape
        r = scores.float().masked_fill(~valid, 0.0)
        if self.params.theta is not None:
            r = torch.exp(self.params.theta / (2 * (1 - self.params.theta)) * r).masked_fill(~valid, 0.0)
        reader = GraphRows(graph, self.params)
        rows_b = torch.arange(B, device=valid.device)
        cis = torch.zeros(B, keep, N, device=valid.device)
        d2 = (r * self_similarity(reader) * r).masked_fill(~valid, float("-inf"))
        # Fallback order once the kernel is exhausted: descending score, ties to the lower index.
        fallback = rank_descending(r, valid)
        taken = ~valid
        exhausted = torch.zeros(B, dtype=torch.bool, device=valid.device)
        picks = []
        for t in range(keep):
            best, j = d2.max(dim=-1), d2.argmax(dim=-1)
            exhausted |= ~(best.values > 0)
            if bool(exhausted.any()):
                # first not-yet-taken token in score order, per exhausted row
                free = ~torch.gather(taken, 1, fallback)
                alt = torch.gather(fallback, 1, free.float().argmax(dim=1, keepdim=True)).squeeze(1)
                j = torch.where(exhausted, alt, j)
            picks.append(j)
            taken = taken.scatter(1, j[:, None], True)
            if t + 1 == keep:
                break
            dj = torch.where(exhausted, torch.ones_like(best.values), d2[rows_b, j])
            l_j = (r[rows_b, j][:, None] * reader.row(j)) * r  # kernel row L_j. = (r_j * S_j.) * r
            inner = torch.bmm(cis[rows_b, :t, j].unsqueeze(1), cis[:, :t]).squeeze(1) if t else 0.0
            e = (l_j - inner) / torch.sqrt(dj)[:, None]
            e = e.masked_fill(~valid | exhausted[:, None], 0.0)
            cis[:, t] = e
            d2 = (d2 - e * e).masked_fill(taken, float("-inf"))
        return torch.stack(picks, dim=1)



def self_similarity(reader: GraphRows) -> torch.Tensor | float:
    """``S_ii``: the dense matrix's own diagonal when it was built (rounded like the reference's
    kernel), else exactly 1 (a cosine graph's value; reading it would cost a pass over all rows)."""
    if reader.dense is None:
        return 1.0
    return torch.diagonal(reader.dense, dim1=1, dim2=2)

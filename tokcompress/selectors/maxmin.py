"""Greedy max-min diversity (DivPrune): repeatedly keep the token farthest from everything kept.

Distance is ``1 - similarity`` from the graph (cosine for DivPrune). DivPrune's first pick is the
token whose nearest neighbour is farthest: the largest *second-smallest* entry of its distance
column (the smallest is, up to rounding, its distance to itself). Every later pick maximises the
minimum distance to the picked set; ``argmax`` takes the first maximum, so ties go to the lower index.

Cost: the first pick needs every entry of the N x N similarity (one pass, in blocks when the matrix
exceeds the memory budget); each later pick is an O(N) update with the new pick's row, read from the
dense matrix or computed with the rows of the next likely picks (see `GraphRows`).
"""

from __future__ import annotations

from typing import Literal

import torch

from ..graphs.base import Graph
from ..tokens import VisualTokens
from .base import Selector, rank_descending
from .graph_rows import GraphRows, RowParams, by_row, select_by_row


class MaxMinParams(RowParams):
    first: Literal["nn_distance", "score"] = "nn_distance"
    """First pick. ``nn_distance``: DivPrune's rule, the largest second-smallest entry of a token's
    distance column (self included, as in the reference's ``topk(2, largest=False)[1]``), O(N^2 D).
    ``score``: the highest-scoring token (needs a scorer; O(N D) in all)."""


class MaxMinSelector(Selector):
    """Farthest-point greedy selection on ``1 - similarity``, computed in fp32.

    Differences from DivPrune's code, all documented: distances are fp32 (the reference uses the
    model dtype, fp16, so near-ties may break differently); a picked token is never picked again
    (the reference could re-pick one only when every remaining token duplicates a picked one).
    Returns the picks in pick order.
    """

    name = "maxmin"
    needs_graph = "similarity"
    Params = MaxMinParams

    def needs_scores(self) -> bool:
        return self.params.first == "score"

    def select(self, tokens: VisualTokens, scores: torch.Tensor | None, graph: Graph, keep: int) -> torch.Tensor:
        if by_row(graph, self.params):
            return select_by_row(self, tokens, scores, graph, keep)
        valid = tokens.valid_mask()
        reader = GraphRows(graph, self.params)
        if self.params.first == "score":
            hint = scores.float().masked_fill(~valid, float("-inf"))
            first = rank_descending(scores, valid)[:, 0]
        else:
            hint = nn_distance(reader, valid, padded=tokens.mask is not None)
            first = hint.argmax(dim=-1)
        picks = [first]
        # min_dist is -inf at padding and picked tokens; fmin keeps it there even where a row is NaN
        # (padding may hold anything) and equals minimum wherever both values are finite.
        min_dist = (1.0 - reader.pick_row(first, hint)).masked_fill_(~valid, float("-inf"))
        min_dist.scatter_(1, first.unsqueeze(1), float("-inf"))
        for _ in range(keep - 1):
            j = min_dist.argmax(dim=-1)
            picks.append(j)
            row = reader.pick_row(j, min_dist)
            min_dist.scatter_(1, j.unsqueeze(1), float("-inf"))
            torch.fmin(min_dist, 1.0 - row, out=min_dist)
        return torch.stack(picks, dim=1)


def nn_distance(reader: GraphRows, valid: torch.Tensor, padded: bool = True) -> torch.Tensor:
    """``[B, N]``: each valid token's second-smallest distance to the valid tokens (self included).

    Padding tokens score ``-inf``; a row with a single valid token gives it ``+inf``. ``padded=False``
    promises every token is valid (no masking, and no host sync to find out). The *columns*
    are read, as DivPrune does (a rounded matrix product need not be symmetric); for a `symmetric`
    graph they are its rows: the dense matrix's, or without it only the blocks on and above the
    diagonal, each computed once. Distance
    ``1 - s`` falls as ``s`` rises, so the second-smallest distance is ``1 -`` the second-largest
    similarity, whatever the rounding.
    """
    B, N = valid.shape
    k = min(2, N)
    if reader.dense is None and reader.graph.symmetric:
        top = torch.full((B, 2, N), float("-inf"), device=valid.device)  # two largest per column, descending
        for s, e, rows in reader.upper_blocks():  # rows [B, R, N - s]: the pairs (i in s..e, j >= s)
            if padded:
                rows = rows.masked_fill(~valid[:, s:e].unsqueeze(2), float("-inf"))
            _merge_top2(top[:, :, s:], _top2(rows, dim=1))  # columns j >= s, over the block's rows
            if e < N:  # rows i in s..e, over the columns j >= e (their pairs j < e came as columns)
                right = rows[:, :, e - s :]
                if padded:
                    right = right.masked_fill(~valid[:, e:].unsqueeze(1), float("-inf"))
                _merge_top2(top[:, :, s:e], _top2(right, dim=2).transpose(1, 2))
        second = top[:, 1]
    else:
        # A symmetric graph's dense matrix is exactly symmetric: its contiguous rows are its columns.
        columns = None if reader.dense is None or reader.graph.symmetric else reader.dense.transpose(1, 2)
        parts = []
        for start, rows in reader.blocks():
            if columns is not None:
                rows = columns[:, start : start + rows.shape[1]]
            if padded:
                rows = rows.masked_fill(~valid.unsqueeze(1), float("-inf"))
            parts.append(rows.topk(k, dim=2).values[..., k - 1])
        second = torch.cat(parts, dim=1)
    return (1.0 - second).masked_fill_(~valid, float("-inf"))


def _top2(x: torch.Tensor, dim: int) -> torch.Tensor:
    """The two largest values along `dim` (1 or 2) of ``[B, R, C]``, descending, on dim 1 or 2 of the
    result; ``-inf`` where there are fewer than two."""
    k = min(2, x.shape[dim])
    top = x.topk(k, dim=dim).values
    if k < 2:
        top = torch.cat([top, torch.full_like(top, float("-inf"))], dim=dim)
    return top


def _merge_top2(top: torch.Tensor, new: torch.Tensor) -> None:
    """In place: ``top`` ``[B, 2, M]`` (descending) becomes the two largest of ``top`` and ``new``."""
    first = torch.maximum(top[:, 0], new[:, 0])
    second = torch.maximum(torch.minimum(top[:, 0], new[:, 0]), torch.maximum(top[:, 1], new[:, 1]))
    top[:, 0], top[:, 1] = first, second

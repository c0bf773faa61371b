"""Greedy max-min diversity (DivPrune): repeatedly keep the token farthest from everything kept.

Distance is ``1 - similarity`` from the graph (cosine for DivPrune). DivPrune's first pick is the
token whose nearest neighbour is farthest: the largest *second-smallest* entry of its distance
column (the smallest is, up to rounding, its distance to itself). Every later pick maximises the
minimum distance to the picked set; ``argmax`` takes the first maximum, so ties go to the lower index.
"""

from __future__ import annotations

from typing import Literal

import torch

from ..graphs.base import Graph
from ..tokens import VisualTokens
from .base import Selector, rank_descending
from .graph_rows import GraphRows, RowParams


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
    """

    name = "maxmin"
    needs_graph = "similarity"
    Params = MaxMinParams

    def needs_scores(self) -> bool:
        return self.params.first == "score"

    def select(self, tokens: VisualTokens, scores: torch.Tensor | None, graph: Graph, keep: int) -> torch.Tensor:
        valid = tokens.valid_mask()
        reader = GraphRows(graph, self.params)
        if self.params.first == "score":
            first = rank_descending(scores, valid)[:, 0]
        else:
            first = nn_distance(reader, valid).argmax(dim=-1)
        blocked = ~valid
        picks = [first]
        blocked = blocked.scatter(1, first[:, None], True)
        min_dist = 1.0 - reader.row(first)
        for _ in range(keep - 1):
            min_dist = min_dist.masked_fill(blocked, float("-inf"))
            j = min_dist.argmax(dim=-1)
            picks.append(j)
            blocked = blocked.scatter(1, j[:, None], True)
            min_dist = torch.minimum(min_dist, 1.0 - reader.row(j))
        return torch.stack(picks, dim=1)


def nn_distance(reader: GraphRows, valid: torch.Tensor) -> torch.Tensor:
    """``[B, N]``: each valid token's second-smallest distance to the valid tokens (self included).

    Padding tokens score ``-inf``; a row with a single valid token gives it ``+inf``. With a dense
    matrix the *columns* are read, as DivPrune does (a rounded matrix product need not be symmetric).
    """
    parts = []
    if reader.dense is not None:
        columns = reader.dense.transpose(1, 2)
        blocks = ((s, columns[:, s : s + reader.block_size]) for s in range(0, columns.shape[1], reader.block_size))
    else:
        blocks = reader.blocks()
    for _, rows in blocks:
        dist = (1.0 - rows).masked_fill(~valid[:, None, :], float("inf"))
        k = min(2, dist.shape[-1])
        parts.append(dist.topk(k, dim=-1, largest=False).values[..., k - 1])
    return torch.cat(parts, dim=1).masked_fill(~valid, float("-inf"))

"""Control selectors that ignore content: seeded random and evenly spaced."""

from __future__ import annotations

import torch

from ..component import Params
from ..graphs.base import Graph
from ..tokens import VisualTokens
from .base import Selector


class RandomParams(Params):
    seed: int = 0
    """Seed of the CPU generator each row draws from afresh: a sample's subset depends only on the
    seed and its valid-token count, not on the device or its position in the batch."""


class RandomSelector(Selector):
    """`keep` valid tokens drawn uniformly without replacement."""

    name = "random"
    needs_scores = False
    Params = RandomParams

    def select(self, tokens: VisualTokens, scores: torch.Tensor | None, graph: Graph | None, keep: int) -> torch.Tensor:
        valid = tokens.valid_mask().cpu()
        rows = []
        for b in range(tokens.batch_size):
            candidates = valid[b].nonzero().flatten()
            gen = torch.Generator().manual_seed(self.params.seed)
            rows.append(candidates[torch.randperm(len(candidates), generator=gen)[:keep]])
        return torch.stack(rows).to(tokens.device)


class UniformSelector(Selector):
    """Evenly spaced tokens: index ``floor((k + 0.5) * n / keep)`` among each row's `n` valid tokens.

    With a multi-segment layout the budget is split across segments in proportion to their size
    (largest remainder, earlier segment first on ties) and the rule applies within each segment.
    """

    name = "uniform"
    needs_scores = False

    def select(self, tokens: VisualTokens, scores: torch.Tensor | None, graph: Graph | None, keep: int) -> torch.Tensor:
        valid = tokens.valid_mask().cpu()
        layouts = tokens.layouts()
        rows = []
        for b in range(tokens.batch_size):
            positions = valid[b].nonzero().flatten()
            sizes = [s.num_tokens for s in layouts[b].segments] if layouts else [len(positions)]
            picks, start = [], 0
            for size, budget in zip(sizes, _split(keep, sizes)):
                if budget:
                    k = torch.arange(budget, dtype=torch.float64)
                    picks.append(start + torch.floor((k + 0.5) * size / budget).long())
                start += size
            rows.append(positions[torch.cat(picks)])
        return torch.stack(rows).to(tokens.device)


def _split(keep: int, sizes: list[int]) -> list[int]:
    """Largest-remainder split of `keep` in proportion to `sizes`, never above a segment's size."""
    total = sum(sizes)
    exact = [keep * s / total for s in sizes]
    out = [int(e) for e in exact]
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - out[i]), i))
    for i in order[: keep - sum(out)]:
        out[i] += 1
    return out

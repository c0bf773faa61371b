"""Control selectors that ignore content: seeded random and evenly spaced."""

from __future__ import annotations

import torch

from pydantic import Field

from ..budget import split
from ..component import INT64_MAX, Params
from ..graphs.base import Graph
from ..layout import OFF_GRID, Grid, Layout
from ..tokens import VisualTokens
from .base import Selector


class RandomParams(Params):
    seed: int = Field(0, ge=0, le=INT64_MAX)
    """Seed of the CPU generator each row draws from afresh: a sample's subset depends only on the
    seed and its valid-token count, not on the device or its position in the batch."""


class RandomSelector(Selector):
    """`keep` valid tokens drawn uniformly without replacement."""

    name = "random"
    Params = RandomParams

    def needs_scores(self) -> bool:
        return False

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
    (`tokcompress.budget.split`: shares, then largest remainder, earlier segment first on ties) and the
    rule applies within each segment.
    Newline tokens of a ``Grid(newline=True)`` are not patches and are skipped, unless the budget
    exceeds the patch count.
    """

    name = "uniform"

    def needs_scores(self) -> bool:
        return False

    def select(self, tokens: VisualTokens, scores: torch.Tensor | None, graph: Graph | None, keep: int) -> torch.Tensor:
        valid = tokens.valid_mask().cpu()
        layouts = tokens.layouts()
        rows = []
        for b in range(tokens.batch_size):
            positions = valid[b].nonzero().flatten()
            groups = _segment_positions(layouts[b] if layouts else None, len(positions), skip_newlines=True)
            if keep > sum(len(g) for g in groups):
                groups = _segment_positions(layouts[b] if layouts else None, len(positions), skip_newlines=False)
            sizes = [len(g) for g in groups]
            picks = []
            for group, size, budget in zip(groups, sizes, split(keep, sizes)):
                if budget:
                    k = torch.arange(budget, dtype=torch.float64)
                    picks.append(group[torch.floor((k + 0.5) * size / budget).long()])
            rows.append(positions[torch.cat(picks)])
        return torch.stack(rows).to(tokens.device)


def _segment_positions(layout: Layout | None, n: int, skip_newlines: bool) -> list[torch.Tensor]:
    """Positions (among a row's valid tokens) of each layout segment, newline tokens optionally left out."""
    if layout is None:
        return [torch.arange(n)]
    coords, out, start = layout.coords(), [], 0
    for seg in layout.segments:
        idx = torch.arange(start, start + seg.num_tokens)
        if skip_newlines and isinstance(seg, Grid) and seg.newline:
            idx = idx[coords[idx, 1] != OFF_GRID]
        out.append(idx)
        start += seg.num_tokens
    return out

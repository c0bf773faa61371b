"""The ``pool`` baseline: average-pool each grid of visual tokens down to the budget.

The token-level equivalent of downsampling the image: a control that keeps every region at a lower
resolution, against which content-driven pruning can be judged. It is two stages, so it composes like
any method: the ``pool`` selector keeps one token per pooled cell (its index gives the pooled token's
position) and the ``pool`` merger replaces that token's features with the mean of its cell. Cells,
budget split over views and the pooled shape are defined in `tokcompress_baselines.pool_grid`.
"""

from __future__ import annotations

from typing import Literal

import torch

from tokcompress.component import Params
from tokcompress.errors import InputError
from tokcompress.graphs.base import Graph
from tokcompress.layout import Layout
from tokcompress.mergers.base import Merger
from tokcompress.selectors.base import KEEP, TARGET, Picks, Selector
from tokcompress.tokens import VisualTokens

from .pool_grid import View, cells, split_budget, views

__all__ = ["PoolSelector", "PoolParams", "PoolMerger"]


class PoolParams(Params):
    anchor: Literal["centre", "top_left"] = "centre"
    """The token of each cell that is kept and carries the cell's mean, hence the pooled token's
    position: ``centre`` (the middle row and column of the cell; the upper / left one of an even
    span) or ``top_left`` (the cell's first token)."""


def _layouts(tokens: VisualTokens, stage: str) -> tuple[Layout, ...]:
    layouts = tokens.layouts()
    if layouts is None:
        raise InputError(f"{stage} 'pool' pools each grid of the layout, but VisualTokens.layout is None; "
                         "pass a Layout (e.g. Layout.grid(rows, cols))")
    return layouts


class PoolSelector(Selector):
    """One token per pooled cell of every view, `TARGET` where the cell holds more than one token."""

    name = "pool"
    Params = PoolParams
    marks_roles = True

    def needs_scores(self) -> bool:
        return False

    def requires(self) -> frozenset[str]:
        return frozenset({"layout"})

    def select(self, tokens: VisualTokens, scores: torch.Tensor | None, graph: Graph | None, keep: int) -> Picks:
        valid = tokens.valid_mask().cpu()
        rows, roles = [], []
        for b, layout in enumerate(_layouts(tokens, "selector")):
            positions = valid[b].nonzero().flatten()
            ordinals, role = self._row(layout, keep)
            rows.append(positions[ordinals])
            roles.append(role)
        return Picks(torch.stack(rows).to(tokens.device), torch.stack(roles).to(tokens.device))

    def _row(self, layout: Layout, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Ordinals (among the row's valid tokens) of the kept tokens, and their roles."""
        parts = views(layout)
        picked, roles = [], []
        for view, k in zip(parts, split_budget(keep, [v.size for v in parts])):
            c = cells(*view.shape, k)
            r, col = c.centres() if self.params.anchor == "centre" else (c.r0, c.c0)
            picked.append(view.ordinals[r, col])
            roles.append(torch.where(c.sizes() > 1, TARGET, KEEP))
        return torch.cat(picked), torch.cat(roles)


class PoolMerger(Merger):
    """Each kept token of a view becomes the mean of its cell; tokens alone in their cell stay exact.

    The view's cells follow from its shape and how many of its tokens are kept; the kept tokens,
    ascending, stand for the cells in raster order. A kept token outside its cell means another
    selector chose them, which is refused. The mean is taken in at least fp32.
    """

    name = "pool"

    def requires(self) -> frozenset[str]:
        return frozenset({"layout"})

    def merge(self, tokens: VisualTokens, keep: torch.Tensor, roles: torch.Tensor | None,
              scores: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        feats = tokens.features
        D = feats.shape[-1]
        out = torch.gather(feats, 1, keep.unsqueeze(-1).expand(-1, -1, D)).clone()
        merged = torch.zeros(keep.shape, dtype=torch.bool, device=keep.device)
        valid = tokens.valid_mask().cpu()
        kept = keep.cpu()
        for b, layout in enumerate(_layouts(tokens, "merger")):
            positions = valid[b].nonzero().flatten()
            slot = torch.full((len(positions),), -1, dtype=torch.long)  # ordinal -> slot in keep[b], or -1
            ordinal = torch.full((valid.shape[1],), -1, dtype=torch.long)
            ordinal[positions] = torch.arange(len(positions))
            slot[ordinal[kept[b]]] = torch.arange(kept.shape[1])
            for view in views(layout):
                slots, means = _pool(view, slot, positions, feats[b])
                if slots is not None:
                    out[b, slots.to(out.device)] = means.to(feats.dtype)
                    merged[b, slots.to(out.device)] = True
        return out, merged


def _pool(view: View, slot: torch.Tensor, positions: torch.Tensor, feats: torch.Tensor):
    """Slots of the view's kept tokens whose cell holds more than one token, and those cells' means."""
    h, w = view.shape
    flat = view.ordinals.flatten()
    kept = (slot[flat] >= 0).nonzero().flatten()  # raster indices of the kept tokens, ascending
    if len(kept) in (0, view.size):
        return None, None
    c = cells(h, w, len(kept))
    r, col = kept // w, kept % w
    outside = ~((c.r0 <= r) & (r < c.r1) & (c.c0 <= col) & (col < c.c1))
    if bool(outside.any()):
        i = int(outside.nonzero()[0])
        raise InputError(
            f"merger 'pool' averages the cells of selector 'pool', but kept token {int(positions[flat[kept[i]]])} "
            f"(row {int(r[i])}, column {int(col[i])} of the {h}x{w} {view.kind} view, which keeps {len(kept)}) is "
            f"not in cell {i} (rows {int(c.r0[i])}-{int(c.r1[i]) - 1}, columns {int(c.c0[i])}-{int(c.c1[i]) - 1}); "
            "use the merger after selector 'pool'"
        )
    cell, rr, cc = c.members()
    dtype = torch.promote_types(feats.dtype, torch.float32)
    source = positions[view.ordinals[rr, cc]].to(feats.device)
    sums = torch.zeros(len(c), feats.shape[-1], dtype=dtype, device=feats.device)
    sums.index_add_(0, cell.to(feats.device), feats[source].to(dtype))
    sizes = c.sizes()
    multi = sizes > 1
    means = sums[multi.to(feats.device)] / sizes[multi].to(feats.device, dtype)[:, None]
    return slot[flat[kept[multi]]], means

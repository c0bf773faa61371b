"""Selector `greedy_mis`: importance pivots, then a greedy maximal independent set for diversity.

D2Pruner steps 3, 5 and 6. The top ``floor(pivot_ratio * keep)`` tokens by (debiased) score are
kept outright. The rest of the budget goes to the remaining tokens in descending score, skipping
any token linked in the graph to one already picked (so near-duplicates and close neighbours are
not kept twice). If that independent set runs out first, a fallback fills the budget.

Vectorised over the batch, and lazy in the graph: candidates are examined in windows of the next
``W`` unexamined tokens in score order. A window member is out if an earlier pick links to it
(one ``picks x W`` graph block) or an earlier member of the same window picked before it does
(one ``W x W`` block, then one O(W) step per pick). Only pairs of examined tokens are ever
evaluated, so the cost follows how far down the ranking the budget is met, not N. The Python
loop runs once per *picked* token, never once per token (on CUDA up to a bound per window, without
a host sync per pick), and the result is exactly the sequential algorithm's.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from tokcompress.budget import share
from tokcompress.component import Params
from tokcompress.errors import InputError
from tokcompress.graphs.base import Graph
from tokcompress.selectors.base import Selector, rank_descending
from tokcompress.tokens import VisualTokens

__all__ = ["GreedyMISSelector", "GreedyMISParams", "greedy_independent_set", "num_pivots"]


class GreedyMISParams(Params):
    pivot_ratio: float = Field(0.7, ge=0, le=1)
    """``r_pivot``: share of the budget kept as pivots, ``floor(pivot_ratio * keep)`` tokens (a
    1e-9 tolerance absorbs float error, e.g. 0.7 * 10). Evidence T (0.7, floor). 0 disables
    pivots, 1 is debiased top-k."""
    fallback: Literal["fill", "rerun_mis"] = "fill"
    """When the independent set is exhausted before the budget: ``fill`` takes the highest-score
    unpicked non-pivots (evidence U; both T ports do this); ``rerun_mis`` runs a fresh greedy MIS
    over the leftovers, repeatedly, until the budget is met (evidence U). ``none`` (return fewer)
    is not offered: every row must keep exactly `keep` tokens. ``relax`` (rerun with another
    threshold) is not offered: it would need the selector to rebuild the graph."""
    suppress_pivot_neighbors: bool = False
    """Also mark the graph neighbours of the pivots unavailable before the MIS. Evidence U (the T
    port does not); default off."""
    window: int = Field(1024, ge=1)
    """Most candidates examined per step (twice the picks still needed, at least 16, at most
    this). Speed and memory only: the indices do not depend on it."""


def num_pivots(keep: int, pivot_ratio: float) -> int:
    """``floor(pivot_ratio * keep)`` by the library's one rounding rule (`tokcompress.budget.share`)."""
    return share(keep, pivot_ratio)


def edges_between(graph: Graph, index: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """``[B, R, C]`` bool edges from `index` to `columns`: the graph's `block` if it has one,
    else its rows restricted to the columns."""
    block = getattr(graph, "block", None)
    if block is not None:
        return block(index, columns)
    rows = graph.rows(index)
    return torch.gather(rows, 2, columns.unsqueeze(1).expand(-1, index.shape[1], -1))


def greedy_independent_set(
    graph: Graph,
    order: torch.Tensor,
    avail: torch.Tensor,
    chosen: torch.Tensor,
    count: torch.Tensor,
    need: int,
    window: int = 1024,
    blockers: torch.Tensor | None = None,
) -> None:
    """Greedy MIS in `order`, in place: take the best unexamined token unless a pick links to it.

    order:    [B, N] token indices, best first (every token once).
    avail:    [B, N] bool, tokens still to examine (cleared as they are examined).
    chosen:   [B, N] bool, picked tokens (updated). count: [B] long, picks so far (updated).
    blockers: [B, P] tokens whose graph neighbours may not be picked either (e.g. pivots).
    Stops for a row when it has `need` picks or nothing is left to examine.
    """
    B, N = avail.shape
    device = avail.device
    early = stops_when_done(device)
    positions = torch.arange(N, device=device)
    batch = torch.arange(B, device=device)
    # Tokens whose neighbours are out, with a validity mask: blockers, then this pass's picks.
    linked = []
    if blockers is not None and blockers.numel():
        linked.append((blockers, torch.ones_like(blockers, dtype=torch.bool)))
    while True:
        remaining = need - count
        active = (remaining > 0) & avail.any(dim=1)
        if not bool(active.any()):
            return
        most = int(remaining[active].max())
        width = int(min(window, N, max(16, 2 * most)))
        ranked = torch.gather(avail & active.unsqueeze(1), 1, order)  # unexamined, in rank order
        first = torch.topk(torch.where(ranked, positions, N), width, dim=1, largest=False, sorted=True)
        alive = first.values < N  # [B, W]: a real unexamined token in this slot
        members = torch.gather(order, 1, first.indices)  # [B, W] token ids, best first
        avail.scatter_(1, members, torch.gather(avail, 1, members) & ~alive)  # examined now
        if linked:
            src = torch.cat([t for t, _ in linked], dim=1)
            ok = torch.cat([m for _, m in linked], dim=1)
            alive &= ~(edges_between(graph, src, members) & ok.unsqueeze(-1)).any(dim=1)
        inner = edges_between(graph, members, members)  # [B, W, W]
        picks, picked_ok = [], []
        # A row picks at most min(width, its remaining) members here. On CPU the loop stops as soon as
        # nothing is live; on CUDA it runs the bound, since asking would be a host sync per pick.
        for _ in range(min(width, most)):
            live = alive & (count < need).unsqueeze(1)
            has = live.any(dim=1)
            if early and not bool(has.any()):
                break
            slot = live.to(torch.uint8).argmax(dim=1)  # first live slot = best remaining member
            token = members[batch, slot]
            alive &= ~(inner[batch, slot] & has.unsqueeze(1))
            alive[batch, slot] = False
            chosen[batch, token] |= has
            count += has
            picks.append(token)
            picked_ok.append(has)
        if picks:
            linked.append((torch.stack(picks, dim=1), torch.stack(picked_ok, dim=1)))


def stops_when_done(device: torch.device) -> bool:
    """Whether the per-pick loop asks the host if any row still picks: free on CPU; on other devices each
    ask is a host sync, so the loop runs its bound instead."""
    return device.type == "cpu"


def _fill_by_rank(
    order: torch.Tensor, left: torch.Tensor, chosen: torch.Tensor, count: torch.Tensor, need: int
) -> None:
    """Add the best-ranked tokens of `left` to `chosen` until each row has `need` (in place)."""
    ranked = torch.gather(left, 1, order)
    take = ranked & (ranked.cumsum(dim=1) <= (need - count).unsqueeze(1))
    chosen.scatter_(1, order, take | torch.gather(chosen, 1, order))
    count += take.sum(dim=1)


class GreedyMISSelector(Selector):
    """Pivots by score, then a greedy maximal independent set of the adjacency graph, then fallback."""

    name = "greedy_mis"
    needs_graph = "adjacency"
    Params = GreedyMISParams

    def select(self, tokens: VisualTokens, scores: torch.Tensor, graph: Graph | None, keep: int) -> torch.Tensor:
        p = self.params
        valid = tokens.valid_mask()
        B, N = valid.shape
        short = (valid.sum(dim=1) < keep).nonzero().flatten().tolist()
        if short:
            raise InputError(f"selector 'greedy_mis': keep={keep} but rows {short} have fewer valid tokens")
        order = rank_descending(scores, valid)
        n_pivots = num_pivots(keep, p.pivot_ratio)
        need = keep - n_pivots
        pivot = torch.zeros_like(valid)
        pivot.scatter_(1, order[:, :n_pivots], True)
        chosen = torch.zeros_like(valid)
        if need > 0:
            if graph is None or graph.kind != "adjacency":
                raise InputError(f"selector 'greedy_mis' needs an adjacency graph, got {graph!r}")
            candidates = valid & ~pivot
            avail = candidates.clone()
            blockers = order[:, :n_pivots] if p.suppress_pivot_neighbors else None
            count = torch.zeros(B, dtype=torch.long, device=valid.device)
            greedy_independent_set(graph, order, avail, chosen, count, need, p.window, blockers)
            while bool((count < need).any()):  # independent set exhausted: fallback
                left = candidates & ~chosen
                if p.fallback == "fill":
                    _fill_by_rank(order, left, chosen, count, need)
                else:
                    greedy_independent_set(graph, order, left, chosen, count, need, p.window)
        kept = pivot | chosen
        return kept.nonzero()[:, 1].view(B, keep)

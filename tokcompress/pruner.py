"""`Pruner`: runs the stages in order and checks each one's output; `build_pruner` makes one from a spec.

All plugin lookup and spec validation happens in `build_pruner`; `Pruner.prune` only runs tensors.
Every call returns one result type, `Selection`, with or without a merger.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from pathlib import Path
from typing import Any, Mapping

import torch

from .budget import Budget
from .catalog import Catalog, get_catalog
from .component import Component
from .composition import check_composition, label
from .debiasers.base import Debiaser
from .errors import InputError, StageError
from .graphs.base import Graph, GraphBuilder
from .mergers.base import Merge, Merger, sizes_from_assignment
from .scorers.base import Scorer
from .selectors.base import KEEP, Picks, Selector
from .spec import PrunerSpec, load_spec
from .tokens import VisualTokens

__all__ = ["Pruner", "Selection", "Compressed", "build_pruner", "resolve_budget"]


def resolve_budget(num_tokens: int, keep: int | None = None, ratio: float | None = None) -> int:
    """Tokens to keep out of `num_tokens`: exactly one of `keep` (count) or `ratio` (fraction).

    Rounding rule: ``max(1, floor(num_tokens * ratio + 1e-9))`` (`tokcompress.budget.share`). A count
    at or above `num_tokens` keeps everything.
    """
    return Budget.of(keep, ratio).count(num_tokens)


@dataclass(frozen=True, eq=False)
class Selection:
    """What a pruner kept: the same type with or without a merger.

    indices: ``[B, M]`` kept token indices, ascending per row. Rows that keep fewer than ``M``
             (per-row budgets) are padded at the end with 0 where `mask` is False.
    mask:    ``[B, M]`` bool, True at real entries; None when every row keeps ``M``.
    roles:   ``[B, M]`` role of each kept token (`selectors.base.KEEP` / `TARGET`); KEEP everywhere
             when the selector marks none.
    merged:  ``[B, M]`` bool, True where a merger replaced the token's features.
    sizes:   ``[B, M]`` tokens each kept slot stands for, when the merger assigns (`assignment`).
    `roles` and `merged` are built on first read when the selector marked no roles or no merger ran, so
    a call that only wants the indices allocates nothing else.
    """

    indices: torch.Tensor
    mask: torch.Tensor | None
    source: torch.Tensor
    """``[B, N, D]`` the features the pruner saw (`VisualTokens.features`)."""
    marked_roles: torch.Tensor | None = None
    """``[B, M]`` the roles the selector marked (None: it marked none)."""
    merged_flags: torch.Tensor | None = None
    """``[B, M]`` bool, the merger's `merged` (None: no merger ran)."""
    merged_features: torch.Tensor | None = None
    """``[B, M, D]`` the merger's output for every kept slot (None without a merger)."""
    assignment: torch.Tensor | None = None
    """``[B, N]`` long: the kept slot each token was folded into (its own for a kept token, -1 at padding);
    None unless the merger assigns (`Merger.gives_sizes`)."""

    @cached_property
    def roles(self) -> torch.Tensor:
        """``[B, M]`` the marked roles, or KEEP everywhere."""
        return self.marked_roles if self.marked_roles is not None else torch.full_like(self.indices, KEEP)

    @cached_property
    def merged(self) -> torch.Tensor:
        """``[B, M]`` bool: the merger's flags, or False everywhere."""
        return self.merged_flags if self.merged_flags is not None else torch.zeros_like(self.indices, dtype=torch.bool)

    @cached_property
    def sizes(self) -> torch.Tensor | None:
        """``[B, M]`` float: tokens each kept slot stands for (itself included; 0 at padding slots), each row
        summing to its valid-token count; None without an assignment."""
        if self.assignment is None:
            return None
        return sizes_from_assignment(self.assignment, self.indices.shape[1])

    @property
    def counts(self) -> list[int]:
        """Tokens kept per row."""
        if self.mask is None:
            return [self.indices.shape[1]] * self.indices.shape[0]
        return self.mask.sum(dim=1).tolist()

    def row(self, b: int) -> torch.Tensor:
        """Row `b`'s kept indices, ascending (``[k_b]``)."""
        return self.indices[b] if self.mask is None else self.indices[b, self.mask[b]]

    @cached_property
    def features(self) -> torch.Tensor:
        """``[B, M, D]``: each kept token's features, the merged ones where a merger ran (0 at padding)."""
        if self.merged_features is not None:
            return self.merged_features
        D = self.source.shape[-1]
        return torch.gather(self.source, 1, self.indices.unsqueeze(-1).expand(-1, -1, D))


Compressed = Selection
"""Former name of `Selection` (``Pruner.compress`` returns one)."""


class Pruner:
    """A composed pruner. Build with `build_pruner`; call `prune` (or `select` / `compress`)."""

    def __init__(
        self,
        spec: PrunerSpec,
        selector: Selector,
        scorer: Scorer | None = None,
        debiaser: Debiaser | None = None,
        graph: GraphBuilder | None = None,
        merger: Merger | None = None,
    ) -> None:
        self.spec = spec
        self.scorer, self.debiaser, self.graph, self.selector, self.merger = scorer, debiaser, graph, selector, merger
        check_composition({c.kind: c for c in self.components()})
        self.requires: dict[str, list[str]] = {}
        for component in self.components():
            for field in sorted(component.requires()):
                self.requires.setdefault(field, []).append(label(component))

    def components(self) -> list[Component]:
        return [c for c in (self.scorer, self.debiaser, self.graph, self.selector, self.merger) if c is not None]

    def __repr__(self) -> str:
        parts = ", ".join(f"{c.kind}={c.name}" for c in self.components())
        return f"Pruner({self.spec.name or 'unnamed'}: {parts})"

    # -- public API ---------------------------------------------------------------------
    def prune(self, tokens: VisualTokens, keep: Any = None, ratio: Any = None, *, budget: Budget | None = None) -> Selection:
        """Run the stages; every row keeps its own budget (``keep`` may be one count per row)."""
        counts = self._counts(tokens, keep, ratio, budget)
        if len(set(counts)) == 1:
            return self._run(tokens, counts[0])
        parts = {k: [b for b, c in enumerate(counts) if c == k] for k in dict.fromkeys(counts)}
        return _stack(tokens, {k: (rows, self._run(tokens.rows(rows), k)) for k, rows in parts.items()}, max(counts))

    def select(self, tokens: VisualTokens, keep: Any = None, ratio: Any = None) -> torch.Tensor:
        """LongTensor ``[B, M]`` of kept token indices: ascending, unique, valid, exactly M per row.

        Every row must keep the same count; `prune` takes per-row budgets. A merger does not change which
        tokens are kept, so it does not run here.
        """
        counts = self._counts(tokens, keep, ratio)
        k = counts[0]
        if counts.count(k) != len(counts):
            raise InputError(
                f"rows would keep different numbers of tokens ({sorted(set(counts))}) for valid counts "
                f"{tokens.valid_sizes()} with keep={keep!r}, ratio={ratio!r}; select returns one "
                "[B, M] tensor: use Pruner.prune (per-row budgets) or pass a keep every row reaches"
            )
        return self._pick(tokens, k)[0]

    def compress(self, tokens: VisualTokens, keep: Any = None, ratio: Any = None) -> Selection:
        """Kept indices and their features (merged where the merger ran): `prune`, kept for its name."""
        return self.prune(tokens, keep, ratio)

    # -- pipeline -----------------------------------------------------------------------
    def _run(self, tokens: VisualTokens, k: int) -> Selection:
        idx, roles, scores = self._pick(tokens, k)
        if k == tokens.num_tokens:  # kept everything: nothing was scored, nothing merges
            own = idx.clone() if self.merger is not None and self.merger.gives_sizes() else None  # every size 1
            return Selection(idx, None, tokens.features, assignment=own)
        kept = Selection(idx, None, tokens.features, roles)
        if self.merger is None:
            return kept
        B, valid = tokens.batch_size, tokens.mask
        out = self.merger.merge(tokens, idx, kept.roles if self.selector.marks_roles else None, scores)
        out = out if isinstance(out, Merge) else Merge(*out)
        _check_tensor(self.merger, "features", out.features, (B, k, tokens.features.shape[-1]), valid=None)
        if out.assignment is not None:
            _check_assignment(self.merger, out.assignment, idx, valid, tokens.num_tokens)
        return Selection(idx, None, tokens.features, roles, out.merged.bool(), out.features, out.assignment)

    def _pick(self, tokens: VisualTokens, k: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The checked picks ``[B, k]`` (ascending), their roles (None: none marked) and the scores the
        selector got."""
        valid = tokens.mask  # None: every token is valid
        B, N = tokens.features.shape[:2]
        if k == N:  # keeps everything (only reachable when no row has padding): nothing to score
            return torch.arange(N, device=tokens.device).expand(B, N).clone(), None, None
        scores = self._scores(tokens, valid, (B, N))
        graph = None
        if self.graph is not None:
            graph = self.graph.build(tokens)
            if not isinstance(graph, Graph) or graph.kind != self.graph.provides or graph.num_tokens != N:
                raise StageError(
                    f"{label(self.graph)} returned {graph!r}; expected a {self.graph.provides} Graph over {N} tokens"
                )
        picks = self.selector.select(tokens, scores, graph, k)
        return (*_check_picks(self.selector, picks, valid, (B, N), k), scores)

    def _scores(self, tokens: VisualTokens, valid: torch.Tensor | None, shape: tuple[int, int]) -> torch.Tensor | None:
        """The scorer's scores, debiased where there is a debiaser. Each stage's output is checked for its
        shape; the values once, on the scores the selector gets (one reduction): non-finite ones are
        traced to the stage that produced them, and so is a debiaser's failure on non-finite input."""
        if self.scorer is None:
            return None
        raw = self.scorer.score(tokens)
        _check_shape(self.scorer, "scores", raw, shape)
        if self.debiaser is None:
            _check_finite(self.scorer, "scores", raw, valid)
            return raw
        try:
            scores = self.debiaser.debias(raw, tokens)
        except Exception:
            _check_finite(self.scorer, "scores", raw, valid)
            raise
        _check_shape(self.debiaser, "scores", scores, shape)
        if not math.isfinite(scores.sum().item()):
            _check_finite(self.scorer, "scores", raw, valid)
            _check_finite(self.debiaser, "scores", scores, valid)
        return scores

    def _counts(self, tokens: VisualTokens, keep: Any, ratio: Any, budget: Budget | None = None) -> list[int]:
        """Each row's kept count, after checking the input is a batch carrying what the stages need."""
        if not isinstance(tokens, VisualTokens):
            raise InputError(f"select expects VisualTokens, got {type(tokens).__name__}")
        for field in self.requires:
            if getattr(tokens, field) is None:
                self._refuse_missing(tokens.present())
        if type(keep) is int and keep >= 1 and ratio is None and budget is None and tokens.mask is None:
            return [min(keep, tokens.num_tokens)] * tokens.batch_size  # the common call, as Budget.count has it
        return Budget.of(keep, ratio, budget).counts(tokens.valid_sizes())

    def _refuse_missing(self, present: frozenset[str]) -> None:
        for field, users in self.requires.items():
            if field not in present:
                raise InputError(
                    f"{', '.join(users)} needs VisualTokens.{field}, which this batch does not carry "
                    f"(present: {', '.join(sorted(present))}); the placement or caller must supply it"
                )


def _stack(tokens: VisualTokens, parts: dict[int, tuple[list[int], Selection]], width: int) -> Selection:
    """One `Selection` of the whole batch from selections of row groups with different counts."""
    B = tokens.batch_size
    device = tokens.device
    idx = torch.zeros(B, width, dtype=torch.long, device=device)
    mask = torch.zeros(B, width, dtype=torch.bool, device=device)
    roles = torch.full((B, width), KEEP, dtype=torch.long, device=device)
    merged = torch.zeros(B, width, dtype=torch.bool, device=device)
    merged_features = None
    assigned = [sel.assignment is not None for _, sel in parts.values()]
    assignment = torch.full((B, tokens.num_tokens), -1, dtype=torch.long, device=device) if all(assigned) else None
    if any(assigned) and not all(assigned):
        raise StageError("a merger assigned tokens in some row groups only")
    for k, (rows, sel) in parts.items():
        r = torch.tensor(rows, device=device)
        idx[r, :k], mask[r, :k], roles[r, :k], merged[r, :k] = sel.indices, True, sel.roles, sel.merged
        if assignment is not None:
            assignment[r] = sel.assignment
        if sel.merged_features is not None:
            if merged_features is None:
                merged_features = tokens.features.new_zeros(B, width, tokens.features.shape[-1])
            merged_features[r, :k] = sel.merged_features
    if merged_features is None and bool(merged.any()):
        raise StageError("a merger replaced features in some row groups only")
    if merged_features is not None:  # rows without a merge keep their gathered features
        plain = torch.gather(tokens.features, 1, idx.unsqueeze(-1).expand(-1, -1, tokens.features.shape[-1]))
        filled = torch.zeros(B, dtype=torch.bool, device=device)
        for k, (rows, sel) in parts.items():
            if sel.merged_features is not None:
                filled[torch.tensor(rows, device=device)] = True
        merged_features = torch.where(filled[:, None, None], merged_features, plain)
    sels = [sel for _, sel in parts.values()]
    marked = roles if any(sel.marked_roles is not None for sel in sels) else None
    flags = merged if any(sel.merged_flags is not None for sel in sels) else None
    return Selection(idx, mask, tokens.features, marked, flags, merged_features, assignment)


def _check_tensor(component: Component, what: str, t: Any, shape: tuple[int, ...], valid: torch.Tensor | None) -> None:
    _check_shape(component, what, t, shape)
    _check_finite(component, what, t, valid)


def _check_shape(component: Component, what: str, t: Any, shape: tuple[int, ...]) -> None:
    if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape or not t.is_floating_point():
        got = f"{tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
        raise StageError(f"{label(component)} returned {what} {got}; expected a float tensor of shape {list(shape)}")


def _check_finite(component: Component, what: str, t: torch.Tensor, valid: torch.Tensor | None) -> None:
    """Non-finite values at valid tokens are an error (padding may hold anything)."""
    if math.isfinite(t.sum().item()):  # a finite sum proves every value finite: one reduction, one sync
        return
    bad = ~torch.isfinite(t)
    if valid is not None:
        bad &= valid
    if bool(bad.any()):
        raise StageError(f"{label(component)} returned non-finite {what} (NaN/inf) at {bad.nonzero()[0].tolist()}")


def _check_assignment(component: Component, assignment: Any, idx: torch.Tensor, valid: torch.Tensor | None,
                      n: int) -> None:
    """A merger's assignment: every valid token to a kept slot, each kept token to its own, padding -1."""
    B, k = idx.shape
    if not isinstance(assignment, torch.Tensor) or assignment.dtype != torch.long or tuple(assignment.shape) != (B, n):
        got = f"{tuple(assignment.shape)} {assignment.dtype}" if isinstance(assignment, torch.Tensor) else type(assignment).__name__
        raise StageError(f"{label(component)} returned assignment {got}; expected a LongTensor of shape [{B}, {n}]")
    valid = torch.ones_like(assignment, dtype=torch.bool) if valid is None else valid
    if bool(((assignment < 0) | (assignment >= k))[valid].any()) or bool((assignment[~valid] != -1).any()):
        raise StageError(f"{label(component)} returned an assignment outside [0, {k}) at a valid token, or not -1 "
                         "at padding")
    own = torch.arange(k, device=idx.device).expand_as(idx)
    if not torch.equal(torch.gather(assignment, 1, idx), own):
        raise StageError(f"{label(component)} assigned a kept token to another kept slot; each kept token stands "
                         "for itself (its own slot)")


def _check_picks(
    component: Selector, picks: Any, valid: torch.Tensor | None, shape: tuple[int, int], k: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sorted indices ``[B, k]`` and their roles (None when the selector marks none), after checking the
    selector kept its contract (`valid`: the tokens' mask, None when every token is valid)."""
    B, N = shape
    idx, roles = (picks.indices, picks.roles) if isinstance(picks, Picks) else (picks, None)
    if not isinstance(idx, torch.Tensor) or idx.dtype != torch.long or tuple(idx.shape) != (B, k):
        got = f"{tuple(idx.shape)} {idx.dtype}" if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise StageError(f"{label(component)} returned indices {got}; expected a LongTensor of shape [{B}, {k}]")
    if roles is not None and (not isinstance(roles, torch.Tensor) or tuple(roles.shape) != (B, k)):
        raise StageError(f"{label(component)} returned roles that are not a tensor of shape [{B}, {k}]")
    # A sorted row lies in [0, N) without duplicates exactly when -1, row..., N strictly increase. The
    # rows are checked as Python ints: one copy (one device sync), where tensor ops on a [B, k] tensor
    # would each cost more than the copy, right after the selection's work; rows a selector already
    # returns ascending (those read off a mask) are not sorted again.
    rows = idx.tolist()
    order = None
    if not all(map(_in_range_ascending, rows, repeat(N))):
        idx, order = torch.sort(idx, dim=1)
        rows = idx.tolist()
        if not all(map(_in_range_ascending, rows, repeat(N))):
            if any(row[0] < 0 or row[-1] >= N for row in rows):
                raise StageError(f"{label(component)} returned indices outside [0, {N})")
            raise StageError(f"{label(component)} returned the same index twice in a row")
    if valid is not None and not bool(torch.gather(valid, 1, idx).all()):
        raise StageError(f"{label(component)} selected padding tokens (VisualTokens.mask is False there)")
    if not idx.is_contiguous():  # an unsorted selection was copied by the sort; a strided one is copied here
        idx = idx.contiguous()
    if roles is None:
        return idx, None
    return idx, roles.long() if order is None else torch.gather(roles.long(), 1, order)


def _in_range_ascending(row: list[int], n: int) -> bool:
    """-1, row..., n strictly increase: the row is ascending, unique and inside [0, n)."""
    return all(map(operator.lt, [-1, *row], [*row, n]))


def build_pruner(spec: "PrunerSpec | str | Path | Mapping[str, Any]", catalog: Catalog | None = None) -> Pruner:
    """A `Pruner` from a spec, preset name, spec file path or mapping. All lookups happen here, once."""
    catalog = catalog or get_catalog()
    spec = load_spec(spec, catalog)
    parts = {
        field: catalog.get(field, block.name).cls(block)  # the block is an instance of the class's Params
        for field, block in spec.stages().items()
    }
    return Pruner(spec, **parts)

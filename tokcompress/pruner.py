"""`Pruner`: runs the stages in order and checks each one's output; `build_pruner` makes one from a spec.

All plugin lookup and spec validation happens in `build_pruner`; `Pruner.select` only runs tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from .catalog import Catalog, get_catalog
from .component import Component
from .debiasers.base import Debiaser
from .errors import InputError, SpecError, StageError
from .graphs.base import Graph, GraphBuilder
from .mergers.base import Merger
from .scorers.base import Scorer
from .selectors.base import Selector
from .spec import PrunerSpec, load_spec
from .tokens import VisualTokens

__all__ = ["Pruner", "Compressed", "build_pruner", "resolve_budget"]


def resolve_budget(num_tokens: int, keep: int | None = None, ratio: float | None = None) -> int:
    """Tokens to keep out of `num_tokens`: exactly one of `keep` (count) or `ratio` (fraction).

    Rounding rule: ``max(1, floor(num_tokens * ratio + 1e-9))`` (the tolerance absorbs binary
    float error, e.g. ``576 * 0.25``). A count at or above `num_tokens` keeps everything.
    """
    if (keep is None) == (ratio is None):
        raise InputError(f"pass exactly one of keep= or ratio=, got keep={keep!r}, ratio={ratio!r}")
    if keep is not None:
        if isinstance(keep, bool) or not isinstance(keep, int):
            raise InputError(f"keep must be an int, got {keep!r} ({type(keep).__name__})")
        if keep <= 0:
            raise InputError(f"keep must be >= 1, got {keep}")
        return min(keep, num_tokens)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not (0 < ratio <= 1):
        raise InputError(f"ratio must be a number in (0, 1], got {ratio!r}")
    return min(num_tokens, max(1, math.floor(num_tokens * ratio + 1e-9)))


@dataclass(frozen=True)
class Compressed:
    """Kept indices ``[B, M]`` (ascending) and their features ``[B, M, D]`` (merged if a merger ran)."""

    indices: torch.Tensor
    features: torch.Tensor


class Pruner:
    """A composed pruner. Build with `build_pruner`; call `select` or `compress`."""

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
        _check_composition(self)
        self.requires: dict[str, list[str]] = {}
        for component in self.components():
            for field in sorted(component.requires):
                self.requires.setdefault(field, []).append(_label(component))

    def components(self) -> list[Component]:
        return [c for c in (self.scorer, self.debiaser, self.graph, self.selector, self.merger) if c is not None]

    def __repr__(self) -> str:
        parts = ", ".join(f"{c.kind}={c.name}" for c in self.components())
        return f"Pruner({self.spec.name or 'unnamed'}: {parts})"

    # -- public API ---------------------------------------------------------------------
    def budget(self, tokens: VisualTokens, keep: int | None = None, ratio: float | None = None) -> int:
        """Tokens kept per row. Ragged rows must resolve to the same count (see `resolve_budget`)."""
        counts = tokens.valid_counts().tolist()
        budgets = {resolve_budget(n, keep, ratio) for n in counts}
        if len(budgets) > 1:
            raise InputError(
                f"rows would keep different numbers of tokens ({sorted(budgets)}) for valid counts {counts} "
                f"with keep={keep!r}, ratio={ratio!r}; every row must keep the same count: pass keep= at most "
                f"{min(counts)}, or prune rows separately"
            )
        return budgets.pop()

    def select(self, tokens: VisualTokens, keep: int | None = None, ratio: float | None = None) -> torch.Tensor:
        """LongTensor ``[B, M]`` of kept token indices: ascending, unique, valid, exactly M per row."""
        indices, _ = self._run(tokens, keep, ratio)
        return indices

    def compress(self, tokens: VisualTokens, keep: int | None = None, ratio: float | None = None) -> Compressed:
        """Kept indices and their features; the merger (if any) supplies merged features."""
        indices, scores = self._run(tokens, keep, ratio)
        gathered = torch.gather(tokens.features, 1, indices.unsqueeze(-1).expand(-1, -1, tokens.features.shape[-1]))
        if self.merger is None:
            return Compressed(indices, gathered)
        merged = self.merger.merge(tokens, indices, scores)
        _check_tensor(self.merger, "features", merged, tuple(gathered.shape), valid=None)
        return Compressed(indices, merged)

    # -- pipeline -----------------------------------------------------------------------
    def _run(self, tokens: VisualTokens, keep: int | None, ratio: float | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not isinstance(tokens, VisualTokens):
            raise InputError(f"select expects VisualTokens, got {type(tokens).__name__}")
        self._check_inputs(tokens)
        k = self.budget(tokens, keep, ratio)
        valid = tokens.valid_mask()
        B, N = valid.shape
        if k == N:  # keep >= N: everything (only reachable when no row has padding)
            return torch.arange(N, device=tokens.device).expand(B, N).clone(), None
        scores = None
        if self.scorer is not None:
            scores = self.scorer.score(tokens)
            _check_tensor(self.scorer, "scores", scores, (B, N), valid)
        if self.debiaser is not None:
            scores = self.debiaser.debias(scores, tokens)
            _check_tensor(self.debiaser, "scores", scores, (B, N), valid)
        graph = None
        if self.graph is not None:
            graph = self.graph.build(tokens)
            if not isinstance(graph, Graph) or graph.kind != self.graph.provides or graph.num_tokens != N:
                raise StageError(
                    f"{_label(self.graph)} returned {graph!r}; expected a {self.graph.provides} Graph over {N} tokens"
                )
        chosen = self.selector.select(tokens, scores, graph, k)
        return _check_indices(self.selector, chosen, valid, k), scores

    def _check_inputs(self, tokens: VisualTokens) -> None:
        present = tokens.present()
        for field, users in self.requires.items():
            if field not in present:
                raise InputError(
                    f"{', '.join(users)} needs VisualTokens.{field}, which this batch does not carry "
                    f"(present: {', '.join(sorted(present))}); the placement or caller must supply it"
                )


def _label(component: Component) -> str:
    return f"{component.kind} {component.name!r} ({type(component).__qualname__})"


def _check_composition(p: Pruner) -> None:
    """Refuse stage combinations that cannot work, naming what is missing."""
    sel = p.selector
    if sel.needs_scores and p.scorer is None:
        raise SpecError(f"{_label(sel)} ranks tokens by score but the spec has no scorer; add a 'scorer' block")
    if p.merger is not None and p.merger.needs_scores and p.scorer is None:
        raise SpecError(f"{_label(p.merger)} reads token scores but the spec has no scorer; add a 'scorer' block")
    if p.debiaser is not None and p.scorer is None:
        raise SpecError(f"{_label(p.debiaser)} corrects scores but the spec has no scorer; add a 'scorer' block")
    if sel.needs_graph is not None:
        if p.graph is None:
            raise SpecError(f"{_label(sel)} needs a {sel.needs_graph} graph but the spec has no 'graph' block")
        if p.graph.provides != sel.needs_graph:
            raise SpecError(
                f"{_label(sel)} needs a {sel.needs_graph} graph but {_label(p.graph)} provides a {p.graph.provides} graph"
            )


def _check_tensor(component: Component, what: str, t: Any, shape: tuple[int, ...], valid: torch.Tensor | None) -> None:
    if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape or not t.is_floating_point():
        got = f"{tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
        raise StageError(f"{_label(component)} returned {what} {got}; expected a float tensor of shape {list(shape)}")
    if bool(torch.isfinite(t.sum())):  # a finite sum proves every value finite: one reduction, one sync
        return
    bad = ~torch.isfinite(t)
    if valid is not None:
        bad &= valid
    if bool(bad.any()):
        raise StageError(f"{_label(component)} returned non-finite {what} (NaN/inf) at {bad.nonzero()[0].tolist()}")


def _check_indices(component: Component, idx: Any, valid: torch.Tensor, k: int) -> torch.Tensor:
    B, N = valid.shape
    if not isinstance(idx, torch.Tensor) or idx.dtype != torch.long or tuple(idx.shape) != (B, k):
        got = f"{tuple(idx.shape)} {idx.dtype}" if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise StageError(f"{_label(component)} returned indices {got}; expected a LongTensor of shape [{B}, {k}]")
    if bool(((idx < 0) | (idx >= N)).any()):
        raise StageError(f"{_label(component)} returned indices outside [0, {N})")
    idx = torch.sort(idx, dim=1).values
    if k > 1 and bool((idx[:, 1:] == idx[:, :-1]).any()):
        raise StageError(f"{_label(component)} returned the same index twice in a row")
    if not bool(torch.gather(valid, 1, idx).all()):
        raise StageError(f"{_label(component)} selected padding tokens (VisualTokens.mask is False there)")
    return idx


def build_pruner(spec: "PrunerSpec | str | Path | Mapping[str, Any]", catalog: Catalog | None = None) -> Pruner:
    """A `Pruner` from a spec, preset name, spec file path or mapping. All lookups happen here, once."""
    catalog = catalog or get_catalog()
    spec = load_spec(spec, catalog)
    parts = {
        field: catalog.get(field, block.name).cls(block)  # the block is an instance of the class's Params
        for field, block in spec.stages().items()
    }
    return Pruner(spec, **parts)

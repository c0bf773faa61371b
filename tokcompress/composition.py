"""Which stage combinations can work: checked when a spec loads and when a `Pruner` is built."""

from __future__ import annotations

from typing import Mapping

from .component import Component
from .errors import SpecError

__all__ = ["check_composition", "label"]


def label(component: Component) -> str:
    """``selector 'topk' (TopKSelector)``: how messages name a stage."""
    return f"{component.kind} {component.name!r} ({type(component).__qualname__})"


def check_composition(parts: Mapping[str, Component]) -> None:
    """Refuse stage combinations that cannot work (`parts`: spec field -> component), naming what is missing."""
    sel, scorer, graph, merger = parts["selector"], parts.get("scorer"), parts.get("graph"), parts.get("merger")
    if sel.needs_scores() and scorer is None:
        raise SpecError(f"{label(sel)} ranks tokens by score but the spec has no scorer; add a 'scorer' block")
    if merger is not None:
        if merger.needs_scores() and scorer is None:
            raise SpecError(f"{label(merger)} reads token scores but the spec has no scorer; add a 'scorer' block")
        if merger.needs_roles() and not sel.marks_roles:
            raise SpecError(
                f"{label(merger)} merges into the targets the selector marks, but {label(sel)} marks none; "
                "use a selector that marks targets (e.g. visionzip) or set the merger's targets: all"
            )
    if parts.get("debiaser") is not None and scorer is None:
        raise SpecError(f"{label(parts['debiaser'])} corrects scores but the spec has no scorer; add a 'scorer' block")
    if sel.needs_graph is not None:
        if graph is None:
            raise SpecError(f"{label(sel)} needs a {sel.needs_graph} graph but the spec has no 'graph' block")
        if graph.provides != sel.needs_graph:
            raise SpecError(
                f"{label(sel)} needs a {sel.needs_graph} graph but {label(graph)} provides a {graph.provides} graph"
            )

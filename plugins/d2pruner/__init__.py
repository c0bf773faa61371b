"""D2Pruner (Zhang et al., AAAI 2026) as tokcompress components: debiased importance, hybrid graph, greedy MIS.

Registered through the ``tokcompress`` entry point ``d2pruner``. Presets live in the registry
(``d2pruner``, ``d2pruner-grounding`` and the ablations); docs/d2pruner.md describes every parameter
and the evidence behind its default.
"""

from __future__ import annotations

from tokcompress.hookspecs import hookimpl

from .greedy_mis import GreedyMISSelector
from .hybrid import HybridGraphBuilder, SemanticGraphBuilder, SpatialGraphBuilder
from .position_prior import PositionPriorDebiaser

__all__ = [
    "GreedyMISSelector",
    "HybridGraphBuilder",
    "PositionPriorDebiaser",
    "SemanticGraphBuilder",
    "SpatialGraphBuilder",
]


@hookimpl
def tokcompress_register_debiasers():
    return [PositionPriorDebiaser]


@hookimpl
def tokcompress_register_graph_builders():
    return [HybridGraphBuilder, SpatialGraphBuilder, SemanticGraphBuilder]


@hookimpl
def tokcompress_register_selectors():
    return [GreedyMISSelector]

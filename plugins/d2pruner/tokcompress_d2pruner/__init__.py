"""D2Pruner (Zhang et al., AAAI 2026) as tokcompress components: debiased importance, hybrid graph, greedy MIS.

Registered through the ``tokcompress`` entry point ``d2pruner`` (`tokcompress_d2pruner.plugin`): the
components, the presets (``d2pruner``, ``d2pruner-grounding`` and the ablations), the analytic
positional-bias profiles and the ``tokcompress calibrate`` command that measures real ones.
docs/d2pruner.md describes every parameter; docs/d2pruner-method.md the evidence behind each default.
"""

from __future__ import annotations

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

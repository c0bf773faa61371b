"""The D2Pruner plugin's hooks: components, presets, analytic profiles and the calibrate command."""

from __future__ import annotations

from pathlib import Path

from tokcompress.hookspecs import hookimpl

from .greedy_mis import GreedyMISSelector
from .hybrid import HybridGraphBuilder, SemanticGraphBuilder, SpatialGraphBuilder
from .position_prior import PositionPriorDebiaser

DATA = Path(__file__).parent / "data"
PRESETS = DATA / "presets"
PROFILES = DATA / "profiles"


@hookimpl
def tokcompress_register_debiasers():
    return [PositionPriorDebiaser]


@hookimpl
def tokcompress_register_graph_builders():
    return [HybridGraphBuilder, SpatialGraphBuilder, SemanticGraphBuilder]


@hookimpl
def tokcompress_register_selectors():
    return [GreedyMISSelector]


@hookimpl
def tokcompress_register_presets():
    return [PRESETS]


@hookimpl
def tokcompress_register_profiles():
    return [PROFILES]


@hookimpl
def tokcompress_register_commands():
    from .calibrate_command import CalibrateCommand

    return [CalibrateCommand]

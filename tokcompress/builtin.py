"""The generic built-in components, registered through the ``tokcompress`` entry point like any plugin."""

from __future__ import annotations

from .cli_commands import CORE_COMMANDS
from .graphs import CosineGraphBuilder
from .hookspecs import hookimpl
from .mergers import AssignMerger, ContextualMerger
from .placement import PrunerOnly
from .scorers import AttentionScorer, FeatureNormScorer, KeyNormScorer, TextRelevanceScorer
from .selectors import DPPSelector, MaxMinSelector, RandomSelector, TopKSelector, UniformSelector


@hookimpl
def tokcompress_register_scorers():
    return [AttentionScorer, KeyNormScorer, FeatureNormScorer, TextRelevanceScorer]


@hookimpl
def tokcompress_register_graph_builders():
    return [CosineGraphBuilder]


@hookimpl
def tokcompress_register_selectors():
    return [TopKSelector, RandomSelector, UniformSelector, MaxMinSelector, DPPSelector]


@hookimpl
def tokcompress_register_mergers():
    return [ContextualMerger, AssignMerger]


@hookimpl
def tokcompress_register_placements():
    return [PrunerOnly]


@hookimpl
def tokcompress_register_commands():
    return CORE_COMMANDS

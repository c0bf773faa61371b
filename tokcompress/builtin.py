"""The generic built-in components, registered through the ``tokcompress`` entry point like any plugin."""

from __future__ import annotations

from .graphs import CosineGraphBuilder
from .hookspecs import hookimpl
from .scorers import AttentionScorer, FeatureNormScorer, KeyNormScorer
from .selectors import RandomSelector, TopKSelector, UniformSelector


@hookimpl
def tokcompress_register_scorers():
    return [AttentionScorer, KeyNormScorer, FeatureNormScorer]


@hookimpl
def tokcompress_register_graph_builders():
    return [CosineGraphBuilder]


@hookimpl
def tokcompress_register_selectors():
    return [TopKSelector, RandomSelector, UniformSelector]

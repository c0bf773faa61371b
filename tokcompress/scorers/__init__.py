"""Scorer interface and the generic built-in scorers."""

from .attention import AttentionScorer
from .base import Scorer
from .norm import FeatureNormScorer, KeyNormScorer
from .text_relevance import TextRelevanceScorer

__all__ = ["Scorer", "AttentionScorer", "KeyNormScorer", "FeatureNormScorer", "TextRelevanceScorer"]

"""Merger interface (optional fifth step of a pruner) and the generic contextual merge."""

from .base import Merger
from .contextual import ContextualMerger

__all__ = ["Merger", "ContextualMerger"]

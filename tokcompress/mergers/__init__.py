"""Merger interface (optional fifth step of a pruner), the generic contextual merge and the assignment merge."""

from .assign import AssignMerger
from .base import Merge, Merger
from .contextual import ContextualMerger

__all__ = ["Merger", "Merge", "ContextualMerger", "AssignMerger"]

"""Merger interface (optional fifth step of a pruner)."""

from .base import Merger

__all__ = ["Merger"]

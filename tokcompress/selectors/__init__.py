"""Selector interface and the generic built-in selectors."""

from .base import Selector, rank_descending
from .controls import RandomSelector, UniformSelector
from .dpp import DPPSelector
from .maxmin import MaxMinSelector
from .topk import TopKSelector

__all__ = ["Selector", "rank_descending", "TopKSelector", "RandomSelector", "UniformSelector", "MaxMinSelector", "DPPSelector"]

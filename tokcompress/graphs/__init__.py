"""GraphBuilder interface, the lazy `Graph`, and the generic cosine builder."""

from .base import Graph, GraphBuilder, GraphKind
from .cosine import CosineGraph, CosineGraphBuilder

__all__ = ["Graph", "GraphBuilder", "GraphKind", "CosineGraph", "CosineGraphBuilder"]

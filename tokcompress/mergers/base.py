"""Merger: optional step after selection that folds dropped tokens into kept ones (VisionZip-style)."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch

from ..component import Component
from ..tokens import VisualTokens


class Merger(Component):
    """`needs_scores`: the merger reads the scorer's output (checked when a pruner is built)."""

    kind: ClassVar[str] = "merger"
    needs_scores: ClassVar[bool] = False

    @abstractmethod
    def merge(self, tokens: VisualTokens, keep: torch.Tensor, scores: torch.Tensor | None) -> torch.Tensor:
        """Replacement features ``[B, M, D]`` for the kept indices `keep` ``[B, M]`` (ascending)."""

"""Scorer: one importance value per visual token; higher means keep first."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch

from ..component import Component
from ..tokens import VisualTokens


class Scorer(Component):
    kind: ClassVar[str] = "scorer"

    @abstractmethod
    def score(self, tokens: VisualTokens) -> torch.Tensor:
        """Float ``[B, N]``, finite at valid tokens (padding positions are ignored)."""

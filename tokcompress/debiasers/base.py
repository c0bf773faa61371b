"""Debiaser: corrects scores for model artefacts (e.g. positional bias) before selection."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch

from ..component import Component
from ..tokens import VisualTokens


class Debiaser(Component):
    kind: ClassVar[str] = "debiaser"

    @abstractmethod
    def debias(self, scores: torch.Tensor, tokens: VisualTokens) -> torch.Tensor:
        """Float ``[B, N]`` corrected scores, same shape as `scores`."""

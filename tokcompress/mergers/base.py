"""Merger: optional step after selection that folds dropped tokens into kept ones (VisionZip-style)."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch

from ..component import Component
from ..tokens import VisualTokens


class Merger(Component):
    """Replaces the features of some kept tokens; `merge` says which.

    `needs_roles()`: the merger folds into the targets a selector marks (`selectors.base.TARGET`),
    so the selector must mark roles (checked when a pruner is built).
    """

    kind: ClassVar[str] = "merger"

    def needs_scores(self) -> bool:
        return False

    def needs_roles(self) -> bool:
        return False

    @abstractmethod
    def merge(self, tokens: VisualTokens, keep: torch.Tensor, roles: torch.Tensor | None,
              scores: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features [B, M, D], merged [B, M] bool)`` for the kept indices `keep` ``[B, M]`` (ascending):
        replacement features of every kept token, and which of them the merge changed. `roles`
        ``[B, M]`` are the selector's roles in the same order (None when it marks none)."""

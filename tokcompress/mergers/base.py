"""Merger: optional step after selection that folds dropped tokens into kept ones (VisionZip-style).

A merger returns replacement features (and which kept tokens they changed), and may also say which
kept token each token was folded into (`Merge.assignment`): that gives every kept token a *size*
(itself plus what it absorbed), which the integration can turn into an attention bias
(`Merger.size_bias`, proportional attention) and `PruningHandle.freeze` can replay.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..component import Component
from ..tokens import VisualTokens

__all__ = ["Merger", "Merge", "sizes_from_assignment"]


@dataclass(frozen=True)
class Merge:
    """What `Merger.merge` returns (a plain ``(features, merged)`` tuple is still accepted).

    features:   ``[B, M, D]`` replacement features of every kept token.
    merged:     ``[B, M]`` bool, where the merge changed the features.
    assignment: ``[B, N]`` long, the kept slot (index into the ``M`` kept tokens) each token was folded
                into; a kept token points at its own slot, padding (invalid) tokens hold -1. None: the
                merger does not say (then no sizes).
    """

    features: torch.Tensor
    merged: torch.Tensor
    assignment: torch.Tensor | None = None


def sizes_from_assignment(assignment: torch.Tensor, m: int) -> torch.Tensor:
    """``[B, m]`` float: how many tokens each kept slot stands for (itself included; -1 entries ignored)."""
    valid = assignment >= 0
    out = torch.zeros(assignment.shape[0], m, dtype=torch.float32, device=assignment.device)
    return out.scatter_add_(1, assignment.clamp(min=0), valid.float())


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

    def replaces_features(self) -> bool:
        """Whether `merge` may change features (placements that feed normed features refuse it then)."""
        return True

    def gives_sizes(self) -> bool:
        """Whether `merge` returns an assignment, so every kept token has a size."""
        return False

    def size_bias(self) -> bool:
        """Whether a model placement should add ``log(size)`` to every attention logit towards each kept
        visual token (layers >= K), so kept tokens keep the attention mass of what they absorbed."""
        return False

    def replay(self, tokens: VisualTokens, keep: torch.Tensor, assignment: torch.Tensor) -> Merge | None:
        """The merge of a fixed assignment (a frozen handle replays it); None: this merger cannot."""
        return None

    @abstractmethod
    def merge(self, tokens: VisualTokens, keep: torch.Tensor, roles: torch.Tensor | None,
              scores: torch.Tensor | None) -> "Merge | tuple[torch.Tensor, torch.Tensor]":
        """`Merge` (or ``(features [B, M, D], merged [B, M] bool)``) for the kept indices `keep` ``[B, M]``
        (ascending): replacement features of every kept token, and which of them the merge changed.
        `roles` ``[B, M]`` are the selector's roles in the same order (None when it marks none)."""

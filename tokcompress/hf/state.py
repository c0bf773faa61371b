"""`CallState`: what one attached pruner knows about the forward call in progress and the sequence it
pruned. Public, so that placements and model adapters share one object instead of a handle's privates.

A *call* is one forward of the model (a prefill, or one decode step of ``generate``); a *sequence*
runs from a pruned prefill through the decode steps that continue it (`Pruned`).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .adapters.base import CallInputs
from .kept import Kept

__all__ = ["CallState", "Step", "Pruned", "VisionChoice"]


@dataclass
class Step:
    """Inputs of one decode call that continues a pruned prefill."""

    mask: torch.Tensor | None
    """Top-level 2-D attention mask (original, unpruned space), or None."""
    past: int
    """Cache length of layer 0 before this call."""
    q: int
    """New tokens in this call."""


@dataclass
class Pruned:
    """What a pruned prefill left behind for the decode steps that continue it."""

    kept: Kept
    padding: torch.Tensor
    """[B, M] bool 2-D mask of the kept sequence."""
    cache: Any = None
    """Weak reference to the KV cache the prefill filled."""
    bias: torch.Tensor | None = None
    """[B, M] float32 added to the attention logits towards each kept slot in every layer >= K (log of the
    kept token's size; 0 at text and filler slots), or None: no bias (no merger sizes, or every size 1)."""


@dataclass
class VisionChoice:
    """A selection made on the vision side, waiting for the prefill that consumes the image features."""

    flat: torch.Tensor | None
    """Kept indices into the batch's row-major image tokens (None: the frozen selection applies)."""
    seconds: float
    count: int
    """Image tokens the selection covers."""


@dataclass
class CallState:
    """Per-call and per-sequence state of one `PruningHandle`."""

    call: CallInputs | None = None
    """Top-level inputs of a prefill that holds image tokens (None otherwise)."""
    mode: str | None = None
    """``prefill`` or ``decode`` while the decoder runs a call this pruner handles, else None."""
    step: Step | None = None
    positions: torch.Tensor | None = None
    """Position ids the decoder runs with in this call ([B, N] or [R, B, N])."""
    pruned: Pruned | None = None
    image_inputs: dict[str, Any] = field(default_factory=dict)
    """Tensor arguments of the last ``get_image_features`` call (image sizes, grids)."""
    frozen: list[torch.Tensor] | None = None
    """A fixed selection replayed instead of running the pruner (`PruningHandle.freeze`)."""
    frozen_assignment: list[torch.Tensor] | None = None
    """Per row, the kept position each visual token was folded into, replayed with `frozen` (or None)."""
    vision: VisionChoice | None = None
    memo: dict[Any, Any] = field(default_factory=dict)

    def new_call(self) -> None:
        self.call, self.mode, self.step, self.positions, self.memo = None, None, None, None, {}

    def memo_get(self, key: Any, make: Callable[[], Any]) -> Any:
        """A value computed once per call (masks, position embeddings shared by several layers)."""
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    def kept_for_length(self, length: int, full: int) -> Kept | None:
        """The prefill's `Kept` when a tensor of `length` belongs to the kept sequence of a `full`-length one."""
        p = self.pruned
        if self.mode == "prefill" and p is not None and length == p.kept.m and full == p.kept.n and length != full:
            return p.kept
        return None

    def owns(self, cache: Any) -> bool:
        """Whether `cache` is the KV cache this pruner's last prefill filled."""
        p = self.pruned
        return p is not None and cache is not None and p.cache is not None and p.cache() is cache

    def remember_cache(self, cache: Any) -> None:
        if self.pruned is not None:
            self.pruned.cache = weakref.ref(cache) if cache is not None else None

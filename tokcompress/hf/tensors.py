"""Small tensor helpers of the kept sequence shared by the placements: broadcasting per-row values,
decode-step masks, merged features, cache length."""

from __future__ import annotations

from typing import Any, Mapping

import torch

from .kept import Kept
from .selection import RowChoice
from .state import Pruned, Step

__all__ = ["cache_arg", "cache_length", "per_row", "per_row_seq", "with_choices", "decode_padding"]


def cache_arg(kwargs: Mapping[str, Any]) -> Any:
    """The KV cache among a forward's keyword arguments (or an output's fields).

    transformers 5.24 renamed ``past_key_values`` to ``cache`` (the old name still reaches a top-level
    ``forward`` from callers, renamed inside); both are looked up so either release works.
    """
    cache = kwargs.get("cache")
    return cache if cache is not None else kwargs.get("past_key_values")


def cache_length(cache: Any) -> int:
    if cache is None:
        return 0
    try:
        return int(cache.get_seq_length())
    except (AttributeError, TypeError):
        return 0


def per_row(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B] values shaped to broadcast over `like` ([B, q] or [R, B, q])."""
    return values.to(like.device).view(*([1] * (like.dim() - 2)), -1, 1)


def per_row_seq(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B, M] values shaped to broadcast over `like` ([B, M] or [R, B, M])."""
    return values.to(like.device).view(*([1] * (like.dim() - 2)), *values.shape)


def with_choices(gathered: torch.Tensor, kept: Kept, choices: list[RowChoice]) -> torch.Tensor:
    """`gathered` [B, M, D] with merged features written at each row's merged kept visual slots."""
    rows = [(b, c) for b, c in enumerate(choices) if c.merged is not None]
    if not rows:
        return gathered
    out = gathered.clone()
    for b, c in rows:
        slots = kept.visual[b].nonzero().flatten()[c.merged]
        out[b, slots] = c.features[c.merged].to(out.dtype)
    return out


def decode_padding(p: Pruned, step: Step) -> torch.Tensor:
    """2-D mask over a pruned layer's keys at a decode step: kept prefix, then the new tokens."""
    n = p.kept.n
    new = step.past + step.q - n
    if step.mask is None:
        tail = p.padding.new_ones(p.padding.shape[0], new)
    else:
        tail = step.mask[:, n:].to(p.padding.device).bool()
    return torch.cat([p.padding, tail], dim=1)

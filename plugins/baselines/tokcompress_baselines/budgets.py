"""Token counts the reference implementations keep, for calling a pruner with exactly that count.

`Pruner.select` keeps exactly ``keep`` tokens and rounds ``ratio`` down. Some reference codes keep a
different count than their nominal budget or round another way; these helpers return the reference's
count so that ``pruner.select(tokens, keep=dart_reference_keep(576))`` matches it token for token.
"""

from __future__ import annotations

import math
from typing import Literal

from tokcompress.errors import InputError

__all__ = ["dart_reference_keep", "divprune_reference_keep", "fastv_reference_keep"]


def dart_reference_keep(
    num_tokens: int,
    *,
    pivot_image: int = 4,
    pivot_text: int = 4,
    max_num_truncation: int | None = 128,
    reduction_ratio: float = 0.778,
    variant: Literal["llava", "qwen", "llava_next"] = "llava",
) -> int:
    """Visual tokens DART keeps: ``pivot_image + (pivot_image + pivot_text) * TOKEN_TOPK``.

    ``TOKEN_TOPK`` per DART's code: ``llava``: ``ceil(T // P)`` with ``T = max_num_truncation`` if set,
    else ``num_tokens * (1 - reduction_ratio)``; ``qwen``: ``int(num_tokens * (1 - reduction_ratio) / P)``;
    ``llava_next``: ``int(min(max_num_truncation or 320, num_tokens - pivot_image) // P)``.
    LLaVA defaults: truncation 128 -> 132 kept of 576; 64 -> 68; ratio 0.778 -> 124; 0.889 -> 60.
    Use with ``count_mode: dart_compat`` (or ``exact``, which agrees at these counts).
    """
    P = pivot_image + pivot_text
    if variant == "llava":
        T = max_num_truncation if max_num_truncation is not None else num_tokens * (1 - reduction_ratio)
        topk = math.ceil(T // P)
    elif variant == "qwen":
        topk = int(num_tokens * (1 - reduction_ratio) / P)
    elif variant == "llava_next":
        topk = int(min(max_num_truncation or 320, num_tokens - pivot_image) // P)
    else:
        raise InputError(f"dart_reference_keep: unknown variant {variant!r}; expected 'llava', 'qwen' or 'llava_next'")
    kept = pivot_image + P * topk
    if P * topk > num_tokens - pivot_image:
        raise InputError(
            f"dart_reference_keep: DART would pick {P} x {topk} tokens from a pool of "
            f"{num_tokens - pivot_image}; its topk fails here (ZichenWen1/DART issue #18)"
        )
    return kept


def divprune_reference_keep(num_tokens: int, ratio: float) -> int:
    """DivPrune's ``int(round(ratio * num_tokens))``: Python rounds half to even (0.098 x 576 -> 56)."""
    if not 0 < ratio <= 1:
        raise InputError(f"divprune_reference_keep: ratio must be in (0, 1], got {ratio!r}")
    return int(round(ratio * num_tokens))


def fastv_reference_keep(num_tokens: int, pruned_ratio: float) -> int:
    """FastV's Hugging Face demo, ``R = round(N * (1 - r))`` for a pruned share ``r`` (0.75 -> 144 of 576)."""
    if not 0 <= pruned_ratio < 1:
        raise InputError(f"fastv_reference_keep: pruned_ratio must be in [0, 1), got {pruned_ratio!r}")
    return round(num_tokens * (1 - pruned_ratio))

"""Attention masks of the kept sequence, built by transformers' own mask functions.

Masks are rebuilt rather than gathered: the 2-D padding mask of the kept sequence (fillers and
padding False) goes through ``create_causal_mask`` / ``create_sliding_window_causal_mask`` sized
against the layer's own KV cache, so causal order, sliding windows (which count kept tokens, as the
cache does), image blocks (Gemma3) and the mask format of the attention implementation (bool for
SDPA, additive for eager, None when SDPA can use ``is_causal``) all come out as the model expects.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch

from ..errors import InputError

__all__ = ["layer_mask", "lm_mask", "add_key_bias", "BIAS_IMPLEMENTATIONS"]


def layer_mask(text_config, layer_type: str, hidden: torch.Tensor, padding: torch.Tensor | None, cache: Any,
               layer_idx: int, block_ids: torch.Tensor | None = None, allow_skip: bool = True):
    """The mask one decoder layer of type `layer_type` needs for queries `hidden` [B, q, D].

    `padding` [B, L] bool covers every key position of the layer (cached + new), or None (no
    padding); `cache` is the model's KV cache (None without cache) and `layer_idx` the layer whose
    cache sizes the mask. `block_ids` [B, L] marks bidirectional blocks (-1 elsewhere), Gemma3-style.
    ``allow_skip=False`` never returns None (SDPA's ``is_causal`` fast path): a bias needs a tensor.
    """
    from transformers import masking_utils as mu

    if getattr(text_config, "use_bidirectional_attention", False):
        raise InputError("pruning models with use_bidirectional_attention=True is not supported")
    kwargs = dict(config=text_config, inputs_embeds=hidden, attention_mask=padding, position_ids=None,
                  layer_idx=layer_idx, **{_cache_name(mu.create_causal_mask): cache})
    if layer_type == "full_attention":
        return mu.create_causal_mask(**kwargs, block_sequence_ids=block_ids,
                                     **_no_skip(mu.create_causal_mask, allow_skip))
    if layer_type == "sliding_attention":
        if block_ids is None:
            return mu.create_sliding_window_causal_mask(
                **kwargs, **_no_skip(mu.create_sliding_window_causal_mask, allow_skip))
        # As Gemma3's create_masks_for_vision_model: AND(sliding window, OR(causal, image blocks)).
        early, _, _, _, kv_length, _, kv_offset = mu._preprocess_mask_arguments(
            text_config, hidden, padding, cache, None, layer_idx
        )
        if not early:
            block_ids = mu.maybe_pad_block_sequence_ids(block_ids, padding, kv_length, kv_offset)
        return mu.create_causal_mask(
            **kwargs,
            or_mask_function=mu.blockwise_overlay(block_ids),
            and_mask_function=mu.sliding_window_overlay(text_config.sliding_window),
        )
    raise InputError(f"decoder layer type {layer_type!r} is not supported (expected full_attention or sliding_attention)")


def _no_skip(fn, allow_skip: bool) -> dict[str, Any]:
    """Arguments that keep `fn` from returning None for SDPA's ``is_causal`` path when `allow_skip` is False.

    ``allow_is_causal_skip`` exists from transformers 5.24; before, any ``and_mask_function`` turns the
    skip off, so an overlay that masks nothing does (the same mask, built through vmap).
    """
    if allow_skip:
        return {}
    if "allow_is_causal_skip" in _parameters(fn):
        return {"allow_is_causal_skip": False}
    return {"and_mask_function": _every_key}


def _every_key(batch_idx: Any, head_idx: Any, q_idx: Any, kv_idx: Any) -> Any:
    return kv_idx >= 0


@functools.lru_cache(maxsize=None)
def _parameters(fn) -> frozenset[str]:
    return frozenset(inspect.signature(fn).parameters)


@functools.lru_cache(maxsize=None)
def _cache_name(fn) -> str:
    """``cache`` from transformers 5.24 on, ``past_key_values`` before (5.24+ still takes the old name, with a warning)."""
    return "cache" if "cache" in _parameters(fn) else "past_key_values"


def lm_mask(original: Any, text_config, layer_types: list[str], hidden: torch.Tensor, padding: torch.Tensor,
            cache: Any, block_ids: torch.Tensor | None):
    """The ``attention_mask`` argument for a language model that now sees the kept sequence.

    A 2-D or missing mask becomes the kept 2-D padding mask (the model builds its own masks; an
    explicit mask also stops transformers from reading the position gaps as packed sequences).
    A prepared mask (4-D, or a dict by layer type as Gemma3 passes) is rebuilt for every type.
    """
    if original is None or (isinstance(original, torch.Tensor) and original.dim() == 2):
        if block_ids is not None:
            raise InputError("image blocks need a prepared mask mapping; got a 2-D mask")
        return padding
    first = {t: layer_types.index(t) for t in dict.fromkeys(layer_types)}
    if isinstance(original, dict):
        return {
            kind: layer_mask(text_config, kind, hidden, padding, cache, first.get(kind, 0), block_ids)
            for kind in original
        }
    if isinstance(original, torch.Tensor) and original.dim() == 4:
        return layer_mask(text_config, "full_attention", hidden, padding, cache, first.get("full_attention", 0), block_ids)
    raise InputError(f"cannot rebuild an attention_mask of type {type(original).__name__} for the kept sequence")


BIAS_IMPLEMENTATIONS = ("sdpa", "eager")
"""Attention implementations whose masks are 4-D tensors an additive bias can be folded into."""


def add_key_bias(mask: Any, bias: torch.Tensor, kv_offset: int, dtype: torch.dtype) -> torch.Tensor:
    """`mask` (4-D bool, True = attend, or additive float) as an additive `dtype` mask plus `bias` on the key axis.

    `bias` [B, M] covers the layer's key positions from 0 (the kept prompt; later keys get 0);
    key j of the mask is position ``kv_offset + j`` (a sliding cache drops the oldest keys).
    Masked entries stay at the dtype's minimum, as transformers' eager masks.
    """
    if not isinstance(mask, torch.Tensor) or mask.dim() != 4:
        got = type(mask).__name__ if not isinstance(mask, torch.Tensor) else f"a {mask.dim()}-D tensor"
        raise InputError(
            f"an attention bias (merger sizes) needs a 4-D attention mask, got {got}; load the model with "
            f"attn_implementation in {list(BIAS_IMPLEMENTATIONS)}"
        )
    kv = mask.shape[-1]
    keys = bias.new_zeros(bias.shape[0], kv)
    width = max(0, min(kv, bias.shape[1] - kv_offset))
    if width:
        keys[:, :width] = bias[:, kv_offset:kv_offset + width]
    keys = keys.to(device=mask.device, dtype=dtype)[:, None, None, :]
    low = torch.finfo(dtype).min
    if mask.dtype == torch.bool:
        return torch.where(mask, keys, torch.tensor(low, dtype=dtype, device=mask.device))
    return (mask.to(dtype) + keys).clamp(min=low)

"""Reference loops for checking an attached pruner: cached `generate` against a no-cache greedy loop.

`greedy_no_cache` reruns the full forward (prefill) for every new token; with the handle frozen
on the prefill's selection it must reproduce `generate_logits` step by step, which is what shows
that positions, masks and the pruned KV cache agree during decoding.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

__all__ = ["generate_logits", "greedy_no_cache", "extend_inputs"]

_PER_TOKEN = ("mm_token_type_ids", "token_type_ids")


def extend_inputs(inputs: dict[str, Any], new: torch.Tensor) -> dict[str, Any]:
    """`inputs` with tokens `new` [B, t] appended (mask 1, per-token type ids 0)."""
    out = dict(inputs)
    out["input_ids"] = torch.cat([inputs["input_ids"], new], dim=1)
    if inputs.get("attention_mask") is not None:
        out["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(new)], dim=1)
    for key in _PER_TOKEN:
        if inputs.get(key) is not None:
            out[key] = torch.cat([inputs[key], torch.zeros_like(new, dtype=inputs[key].dtype)], dim=1)
    return out


def _banned(model, suppress: Sequence[int]) -> list[int]:
    """`suppress` plus the end-of-sequence ids: both loops then produce exactly `steps` tokens."""
    eos = model.generation_config.eos_token_id
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    return sorted(set(suppress) | set(eos))


def _suppress(logits: torch.Tensor, suppress: Sequence[int]) -> torch.Tensor:
    if suppress:
        logits = logits.clone()
        logits[:, list(suppress)] = float("-inf")
    return logits


@torch.no_grad()
def generate_logits(model, inputs: dict[str, Any], steps: int, suppress: Sequence[int] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy ``generate`` with the KV cache: (new tokens [B, steps], raw logits [B, steps, V]).

    `suppress` ids (and end-of-sequence) are never generated, in both loops alike.
    """
    out = model.generate(**inputs, max_new_tokens=steps, do_sample=False, suppress_tokens=_banned(model, suppress),
                         output_logits=True, return_dict_in_generate=True)
    tokens = out.sequences[:, inputs["input_ids"].shape[1]:]
    return tokens, torch.stack(out.logits, dim=1)


@torch.no_grad()
def greedy_no_cache(model, inputs: dict[str, Any], steps: int, suppress: Sequence[int] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy decoding that reruns the whole prompt every step (``use_cache=False``): tokens and logits.

    Position ids are the ones ``generate`` derives from the attention mask (its own helper), so a
    masked token inside the prompt shifts later positions the same way in both loops.
    """
    tokens, logits = [], []
    current = dict(inputs)
    suppress = _banned(model, suppress)
    for _ in range(steps):
        extra = {}
        if current.get("attention_mask") is not None and "position_ids" not in current:
            extra["position_ids"] = model._prepare_position_ids_for_generation(current["input_ids"], dict(current))
        last = model(**current, **extra, use_cache=False).logits[:, -1].float()
        nxt = _suppress(last, suppress).argmax(dim=-1, keepdim=True)
        tokens.append(nxt)
        logits.append(last)
        current = extend_inputs(current, nxt)
    return torch.cat(tokens, dim=1), torch.stack(logits, dim=1)

"""Last-token attention and post-RoPE keys at one layer, without switching the model to eager attention.

A probe registers its own attention function (and the matching mask function, else transformers
would build no mask for an unknown implementation name) under a name unique to the probe, and
switches only the text model to it. The function defers to the implementation the model was
using; at the probed module (matched by identity) during an armed prefill it also computes the
softmax row of the last query, in fp32, over heads: O(N * d) extra work at one layer.
"""

from __future__ import annotations

import importlib
import itertools
from typing import Any, Callable

import torch
from torch import nn

from ..errors import InputError

__all__ = ["AttentionProbe", "row_attention"]

_ids = itertools.count()
SUPPORTED_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "flash_attention_3")


def row_attention(query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, scaling: float,
                  row: int = -1, softcap: float | None = None, sliding_window: int | None = None) -> torch.Tensor:
    """[B, k] head-mean softmax attention of query `row` over the k keys (fp32).

    `query` [B, H, q, d] and `key` [B, H_kv, k, d] are post-RoPE; `mask` is a 4-D bool (True =
    attend) or additive float mask, a 2-D padding mask (flash attention), or None (the last row of a
    causal mask, or any row of a bidirectional one, sees every key). `sliding_window` applies to the
    last row when the mask does not carry it.
    """
    B, H, _, d = query.shape
    Hkv, k = key.shape[1], key.shape[2]
    q = query[:, :, row, :].float().view(B, Hkv, H // Hkv, d)
    logits = torch.einsum("bhgd,bhkd->bhgk", q, key.float()).reshape(B, H, k) * scaling
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    if mask is not None and mask.dim() == 4:
        line = mask[:, :, row, :k]  # [B, 1, k]
        logits = logits.masked_fill(~line, float("-inf")) if line.dtype == torch.bool else logits + line.float()
    else:
        if mask is not None:  # 2-D padding mask
            logits = logits.masked_fill(~mask[:, None, :k].bool(), float("-inf"))
        if sliding_window is not None and k > sliding_window:
            logits[..., : k - sliding_window] = float("-inf")
    return torch.softmax(logits, dim=-1).mean(dim=1)


class AttentionProbe:
    """Captures attention and/or keys at `target` (an attention module) on the next armed prefill.

    `row` is the query whose attention is kept: -1 (last prompt token, decoder) or 0 (CLS, vision).
    """

    def __init__(self, target: nn.Module, want_attention: bool, want_keys: bool, row: int = -1) -> None:
        self.target = target
        self.row = row
        self.want_attention = want_attention
        self.want_keys = want_keys
        self.name = f"tokcompress_probe_{next(_ids)}"
        self.armed = False
        self.attention: torch.Tensor | None = None
        self.keys: torch.Tensor | None = None
        self._base: str | None = None
        self._eager: dict[type, Callable] = {}

    # -- life cycle -------------------------------------------------------------------
    def install(self, model: nn.Module, text_config, text_key: str) -> Callable[[], None]:
        """Register the functions and switch the sub-model of `text_key` (only) to them; returns the undo."""
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

        base = text_config._attn_implementation
        if base not in SUPPORTED_IMPLEMENTATIONS:
            raise InputError(
                f"attention probes need the text model's attn_implementation in {list(SUPPORTED_IMPLEMENTATIONS)}, "
                f"got {base!r}; load the model with attn_implementation='sdpa'"
            )
        self._base = base
        AttentionInterface.register(self.name, self)
        AttentionMaskInterface.register(self.name, ALL_MASK_ATTENTION_FUNCTIONS[base])
        try:
            model.set_attn_implementation({text_key: self.name})
        except Exception:
            _unregister(self.name)
            raise

        def undo() -> None:
            model.set_attn_implementation({text_key: base})
            _unregister(self.name)

        return undo

    def arm(self) -> None:
        self.armed, self.attention, self.keys = True, None, None

    def disarm(self) -> None:
        self.armed = False

    # -- the attention function -------------------------------------------------------
    def __call__(self, module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 attention_mask: torch.Tensor | None, **kwargs: Any):
        if self.armed and module is self.target and query.shape[2] > 1:
            self.armed = False
            with torch.no_grad():
                if self.want_attention:
                    scaling = kwargs.get("scaling")
                    scaling = module.head_dim**-0.5 if scaling is None else scaling
                    self.attention = row_attention(query, key, attention_mask, scaling, self.row,
                                                   kwargs.get("softcap"), kwargs.get("sliding_window"))
                if self.want_keys:
                    self.keys = key.detach().transpose(1, 2).reshape(key.shape[0], key.shape[2], -1)
        return self._base_fn(module)(module, query, key, value, attention_mask, **kwargs)

    def _base_fn(self, module: nn.Module) -> Callable:
        if self._base != "eager":
            from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

            return ALL_ATTENTION_FUNCTIONS[self._base]
        fn = self._eager.get(type(module))
        if fn is None:  # the model file's own eager function (softcapping, sinks, ... differ per family)
            fn = self._eager[type(module)] = importlib.import_module(type(module).__module__).eager_attention_forward
        return fn


def _unregister(name: str) -> None:
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    ALL_ATTENTION_FUNCTIONS._global_mapping.pop(name, None)
    ALL_MASK_ATTENTION_FUNCTIONS._global_mapping.pop(name, None)

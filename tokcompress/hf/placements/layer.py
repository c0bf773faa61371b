"""``apply: {placement: layer, layer: K}``: layers < K see every token; the input of layer K is pruned.

Layers >= K (and their KV cache) hold only the kept tokens. The pruner reads layer K-1's output
(hidden states, or the same through the final norm), the last prompt token's attention and the
keys at layer K-1 (an `AttentionProbe`, only when a stage needs them).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from pydantic import Field
from torch import nn

from ...errors import InputError
from ..kept import take
from ..masks import layer_mask
from ..probes import AttentionProbe
from ..tensors import cache_arg, decode_padding, per_row, with_choices
from .base import FeaturesParams, ModelPlacement, Strategy

__all__ = ["LayerPlacement", "LayerStrategy"]


class LayerParams(FeaturesParams):
    layer: int = Field(2, ge=1)
    """Pruning layer K: layers < K see every token (K = 2 in FastV, DART and D2Pruner)."""


class LayerStrategy(Strategy):
    def __init__(self, handle, params: LayerParams) -> None:
        super().__init__(handle, params)
        self.probe: AttentionProbe | None = None

    @property
    def layer(self) -> int:
        return self.params.layer

    def check_model(self) -> None:
        super().check_model()
        n = len(self.handle.layers)
        if not 1 <= self.layer < n:
            raise InputError(f"apply.layer K={self.layer} is out of range for a {n}-layer decoder; expected 1 <= K < {n}")

    def install(self) -> list[Any]:
        h = self.handle
        for i in range(self.layer, len(h.layers)):
            h.hook(h.layers[i], partial(self._on_layer, i))
        return []

    def prepare(self) -> None:
        """Install the attention probe at layer K-1 before the first pruned prefill (never for a budget
        that keeps everything: the model then keeps its own attention implementation)."""
        h = self.handle
        needs = h.pruner.requires
        want_attn, want_keys = "attention" in needs, bool({"keys", "text_keys"} & needs.keys())
        if self.probe is not None or not (want_attn or want_keys):
            return
        target = h.adapter.attention_module(h.layers[self.layer - 1])
        probe = AttentionProbe(target, want_attn, want_keys)
        h.on_remove(probe.install(h.model, h.text_config, h.adapter.text_config_key))
        self.probe = probe

    def prefill(self, kwargs: dict[str, Any], cache: Any) -> None:
        if self.probe is not None:
            self.probe.arm()

    def finish(self) -> None:
        if self.probe is not None:
            self.probe.disarm()

    # -- layers >= K --------------------------------------------------------------------
    def _on_layer(self, i: int, module: nn.Module, args: tuple, kwargs: dict):
        h, state = self.handle, self.handle.state
        if state.mode is None:
            return None
        args, kwargs = list(args), dict(kwargs)
        hidden = args[0] if args else kwargs["hidden_states"]
        cache = cache_arg(kwargs)
        if state.mode == "prefill":
            if i == self.layer:
                hidden = self._prune(hidden)
                if args:
                    args[0] = hidden
                else:
                    kwargs["hidden_states"] = hidden
            kept = state.pruned.kept
            pos = state.memo_get("pos", lambda: h.kept_positions(state.positions)) if self.renumber else None
            kwargs["position_embeddings"] = self._position_embeddings(i, kwargs.get("position_embeddings"), hidden, pos)
            ids = kwargs.get("position_ids")
            if isinstance(ids, torch.Tensor) and ids.shape[-1] == kept.n:
                kwargs["position_ids"] = state.memo_get(("ids", id(ids)), lambda: h.kept_positions(ids))
            padding = state.pruned.padding
        else:
            step, p = state.step, state.pruned
            if step.mask is not None and step.mask.shape[1] != step.past + step.q:
                raise InputError(
                    f"attention_mask has {step.mask.shape[1]} positions; expected {step.past + step.q} "
                    "(the unpruned sequence) when decoding after in-LLM pruning"
                )
            padding = state.memo_get("padding", lambda: decode_padding(p, step))
            if self.renumber:
                pos = state.positions - per_row(p.kept.dropped, state.positions)
                kind = h.layer_types[i]
                kwargs["position_embeddings"] = state.memo_get(
                    ("pe", kind), lambda: h.adapter.rotary(h.decoder, hidden, pos, kind))
                if isinstance(kwargs.get("position_ids"), torch.Tensor):
                    kwargs["position_ids"] = kwargs["position_ids"] - per_row(p.kept.dropped, kwargs["position_ids"])
        kwargs["attention_mask"] = self._layer_mask(i, hidden, padding, cache)
        return tuple(args), kwargs

    def _prune(self, hidden: torch.Tensor) -> torch.Tensor:
        """Select from layer K-1's output and gather it to the kept sequence."""
        attention = keys = None
        if self.probe is not None:
            p = self.probe
            if (p.want_attention and p.attention is None) or (p.want_keys and p.keys is None):
                raise InputError("the attention probe at layer K-1 did not run; was the model called with inputs_embeds only?")
            attention, keys = p.attention, p.keys
        kept, choices = self.handle.choose(hidden, attention, keys)
        return with_choices(take(hidden, kept.index, 1), kept, choices)

    def _position_embeddings(self, i: int, pe: Any, hidden: torch.Tensor, renumbered: torch.Tensor | None):
        """(cos, sin) for layer i's kept tokens: gathered, or recomputed at renumbered positions."""
        h, state = self.handle, self.handle.state
        kept = state.pruned.kept
        if renumbered is not None:
            kind = h.layer_types[i]
            return state.memo_get(("pe", kind), lambda: h.adapter.rotary(h.decoder, hidden, renumbered, kind))
        if pe is None:
            return None
        return state.memo_get(("pe", id(pe[0])), lambda: tuple(
            take(t, kept.index, -2) if t.shape[-2] == kept.n else t for t in pe))

    def _layer_mask(self, i: int, hidden: torch.Tensor, padding: torch.Tensor, cache: Any):
        """Layer i's mask over the kept sequence, with the kept tokens' size bias when there is one."""
        h, state = self.handle, self.handle.state
        kind = h.layer_types[i]
        sizes = cache.get_mask_sizes(hidden.shape[1], i) if cache is not None else None
        biased = state.pruned.bias is not None

        def make():
            block = None
            if state.mode == "prefill":
                block = h.adapter.block_sequence_ids(state.call, state.pruned.kept.index, state.pruned.kept.real)
            mask = layer_mask(h.text_config, kind, hidden, padding, cache, i, block, allow_skip=not biased)
            return self.biased_mask(i, mask, hidden, cache) if biased else mask

        return state.memo_get(("mask", kind, sizes, hidden.shape[1]), make)


class LayerPlacement(ModelPlacement):
    """Prune the input of decoder layer K (FastV, DART, D2Pruner)."""

    name = "layer"
    provides = frozenset({"features", "attention", "keys", "text_keys", "text_features", "text_mask", "layout", "mask"})
    Params = LayerParams
    strategy = LayerStrategy

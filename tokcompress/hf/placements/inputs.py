"""``apply: {placement: pre_llm}``: prune the decoder's input embeddings (DivPrune, CDPruner, controls).

The decoder sees only the kept sequence, so its KV cache is born pruned; decode steps get their
2-D mask (and, when renumbering, their positions) translated into the pruned space.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from ...errors import InputError
from ..kept import Kept, take
from ..masks import lm_mask
from ..tensors import cache_arg, per_row, with_choices
from .base import FeaturesParams, ModelPlacement, Strategy

__all__ = ["InputsPlacement", "InputsStrategy"]


class InputsStrategy(Strategy):
    def install(self) -> list[Any]:
        """A pre-hook on every decoder layer that adds the kept tokens' size bias to its mask (when the merger
        gives one): the decoder builds its masks itself, so the bias goes in per layer, prefill and decode."""
        h = self.handle
        if self.wants_bias:
            for i, layer in enumerate(h.layers):
                h.hook(layer, partial(self._on_layer, i))
        return []

    def _on_layer(self, i: int, module, args: tuple, kwargs: dict):
        state = self.handle.state
        if state.mode is None or state.pruned is None or state.pruned.bias is None:
            return None
        hidden = args[0] if args else kwargs["hidden_states"]
        kwargs = dict(kwargs)
        kwargs["attention_mask"] = self.biased_mask(i, kwargs.get("attention_mask"), hidden, cache_arg(kwargs))
        return args, kwargs

    def prefill(self, kwargs: dict[str, Any], cache: Any) -> None:
        embeds = kwargs["inputs_embeds"]
        kept, choices = self.choose(embeds)
        self.gather_inputs(kwargs, cache, kept, with_choices(take(embeds, kept.index, 1), kept, choices))

    def choose(self, embeds: torch.Tensor):
        return self.handle.choose(embeds)

    def gather_inputs(self, kwargs: dict[str, Any], cache: Any, kept: Kept, new: torch.Tensor) -> None:
        """Point the decoder's inputs at the kept sequence: embeddings, positions, mask, family extras."""
        h, state = self.handle, self.handle.state
        pos = h.kept_positions(kwargs["position_ids"])
        block = h.adapter.block_sequence_ids(state.call, kept.index, kept.real)
        kwargs["attention_mask"] = lm_mask(kwargs.get("attention_mask"), h.text_config, h.layer_types, new,
                                           state.pruned.padding, cache, block)
        kwargs["inputs_embeds"], kwargs["position_ids"] = new, pos
        h.adapter.gather_lm_kwargs(kwargs, kept.index, kept.real)

    def decode_inputs(self, args: tuple, kwargs: dict[str, Any]):
        """The 2-D mask and positions of a decode step in the space of the pruned cache."""
        state = self.handle.state
        p, step = state.pruned, state.step
        n, m = p.kept.n, p.kept.m
        mask = step.mask
        kwargs = dict(kwargs)
        if mask is None:
            if not bool(p.padding.all()):
                tail = p.padding.new_ones(p.padding.shape[0], step.past + step.q - m)
                kwargs["attention_mask"] = torch.cat([p.padding, tail], dim=1).long()
        elif mask.shape[1] == step.past + step.q + (n - m):
            kwargs["attention_mask"] = torch.cat([p.padding.to(mask.dtype), mask[:, n:]], dim=1)
        elif mask.shape[1] != step.past + step.q:
            raise InputError(
                f"attention_mask has {mask.shape[1]} positions; expected {step.past + step.q + n - m} (the unpruned "
                f"sequence) or {step.past + step.q} (the pruned one) for {step.q} new tokens"
            )
        pos = kwargs.get("position_ids")
        if pos is not None and self.renumber:
            kwargs["position_ids"] = pos - per_row(p.kept.dropped, pos)
        return args, kwargs

    def decode_positions(self, positions: torch.Tensor) -> torch.Tensor:
        kept = self.handle.state.pruned.kept
        pos = positions + (kept.n - kept.m)  # the cache holds the pruned sequence; positions continue the original
        return pos - per_row(kept.dropped, pos) if self.renumber else pos


class InputsPlacement(ModelPlacement):
    """Prune the decoder's input embeddings (projector outputs at the image tokens)."""

    name = "pre_llm"
    provides = frozenset({"features", "layout", "mask", "text_features", "text_mask"})
    Params = FeaturesParams
    strategy = InputsStrategy

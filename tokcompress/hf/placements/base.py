"""What the integration's placements share: their ``apply`` parameters and the strategy contract.

A placement (``pre_llm``, ``layer``, ``vision``) is a light declaration (parameters, what it can
feed, spec checks) registered through the ``tokcompress_register_placements`` hook; its `Strategy`
does the model work once `attach` has found the model's adapter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Literal

import torch

from ...component import Component, Params
from ...errors import InputError, SpecError
from ...placement import Placement

if TYPE_CHECKING:
    from ..handle import PruningHandle

__all__ = ["ModelPlacement", "Strategy", "PositionsParams", "FeaturesParams"]


class PositionsParams(Params):
    positions: Literal["original", "contiguous"] = "original"
    """RoPE positions of the kept tokens: ``original`` (FastV, DART, D2Pruner: pruned tokens leave a
    gap) or ``contiguous`` (renumbered, as the DivPrune, CDPruner and VisionZip reference code does)."""


class FeaturesParams(PositionsParams):
    features: Literal["hidden", "normed"] = "hidden"
    """What `VisualTokens.features` / ``text_features`` hold: ``hidden`` (hidden states entering the
    pruning layer, or the projector outputs pre-LLM) or ``normed`` (the same through the decoder's
    final norm, as DART compares them)."""


class ModelPlacement(Placement):
    """A placement `attach` can run: `strategy` builds the object that hooks the model."""

    strategy: ClassVar[type["Strategy"]]

    def check(self, parts: dict[str, Component], others: Iterable[type[Placement]]) -> None:
        super().check(parts, others)
        merger = parts.get("merger")
        if getattr(self.params, "features", "hidden") == "normed" and merger is not None and merger.replaces_features():
            raise SpecError(
                f"apply.features 'normed' cannot be combined with a merger that replaces features (merger "
                f"{merger.name!r}): merged features must stay in the decoder's hidden-state space; use features: hidden"
                + (" (or the merger's values: keep)" if merger.gives_sizes() else "")
            )


class Strategy:
    """The model work of one placement for one `PruningHandle`: hooks, pruning, decode fix-ups."""

    def __init__(self, handle: "PruningHandle", params: Any) -> None:
        self.handle = handle
        self.params = params
        self.renumber = getattr(params, "positions", "original") == "contiguous"
        self.features = getattr(params, "features", "hidden")

    @property
    def layer(self) -> int:
        """Pruning layer K (0 before the decoder)."""
        return 0

    unit: ClassVar[str] = "sample"
    """What one budget applies to (a sample, or an image for the vision placement)."""

    def check_model(self) -> None:
        """Refuse a model this placement cannot run on (called once at attach)."""
        self.check_bias_support()

    @property
    def wants_bias(self) -> bool:
        """Whether the pruner's merger asks for an attention bias from kept-token sizes."""
        merger = self.handle.pruner.merger
        return merger is not None and merger.size_bias()

    def check_bias_support(self) -> None:
        """A size bias is folded into 4-D masks: refuse attention implementations that take none (flash)."""
        from ..masks import BIAS_IMPLEMENTATIONS

        impl = getattr(self.handle.text_config, "_attn_implementation", None)
        if self.wants_bias and impl not in BIAS_IMPLEMENTATIONS:
            raise InputError(
                f"merger {self.handle.pruner.merger.name!r} with bias 'log_size' adds log(size) to attention logits, "
                f"which needs an additive mask; the text model's attn_implementation is {impl!r}, expected one of "
                f"{list(BIAS_IMPLEMENTATIONS)} (load the model with attn_implementation='sdpa', or set the merger's "
                "bias: none)"
            )

    def biased_mask(self, i: int, mask: Any, hidden: torch.Tensor, cache: Any) -> Any:
        """Layer `i`'s mask with the kept tokens' log-size bias on the key axis, when the pruned sequence has
        one (some kept token stands for more than itself); otherwise `mask` unchanged.

        A None mask (SDPA's causal fast path: no padding) is materialised first. `cache` is the KV cache the
        layer was called with (`tensors.cache_arg`): it places the bias on the key axis of a decode step.
        """
        h, state = self.handle, self.handle.state
        p = state.pruned
        if p is None or p.bias is None:
            return mask
        from ..masks import add_key_bias, layer_mask

        if cache is None and state.mode == "decode":  # the keys are the cache's: without it the bias would be lost
            raise InputError(f"decoder layer {i} ran a cached decode step without receiving the KV cache (neither "
                             "'cache' nor 'past_key_values'); the kept tokens' size bias cannot be placed")
        q = hidden.shape[1]
        offset = cache.get_mask_sizes(q, i)[1] if cache is not None else 0

        def make():
            full = mask
            if full is None:
                full = layer_mask(h.text_config, h.layer_types[i], hidden, None, cache, i, allow_skip=False)
            return add_key_bias(full, p.bias, offset, hidden.dtype)

        return state.memo_get(("bias", id(mask), offset, q, h.layer_types[i]), make)

    def install(self) -> list[Any]:
        """Hooks of this placement; returns undo callables."""
        return []

    def prepare(self) -> None:
        """A prefill is about to be pruned: install what only pruning needs (probes), once."""

    def budget_units(self, call: Any) -> list[int]:
        """Visual tokens of each unit the budget applies to (default: each row of the batch)."""
        return call.visual.sum(dim=1).tolist()

    def prefill(self, kwargs: dict[str, Any], cache: Any) -> None:
        """The decoder's prefill call is about to run with `kwargs` (edited in place)."""

    def decode_inputs(self, args: tuple, kwargs: dict[str, Any]):
        """Top-level inputs of a decode step continuing a pruned prefill; None keeps them."""
        return None

    def decode_positions(self, positions: torch.Tensor) -> torch.Tensor:
        """Decode position ids when the caller gave none (`positions`: cache length onwards)."""
        return positions

    def finish(self) -> None:
        """The decoder's call returned (prefill or decode)."""

    def describe(self) -> str:
        return type(self).__name__

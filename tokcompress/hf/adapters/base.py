"""`ModelAdapter`: what the integration needs to know about one VLM architecture, and nothing else.

The pruning machinery (hooks, masks, positions, probes) is shared by every family; an adapter only
says where the language model is, which token id marks an image, how each prompt's visual tokens
are laid out in 2-D, and any family quirk (Gemma3 image blocks, Qwen3-VL deepstack). Adding an
architecture is a subclass registered through ``tokcompress_register_model_adapters``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ...layout import Layout

__all__ = ["ModelAdapter", "CallInputs", "VisionSide"]


@dataclass(frozen=True)
class VisionSide:
    """Where the ``vision`` placement hooks a model: its vision tower, projector and probed attention."""

    tower: nn.Module
    """Runs once per batch of images (its pre-hook arms the attention probe)."""
    projector: nn.Module
    """Receives the selected vision features ``[images, T, C]`` (its pre-hook selects and merges)."""
    attention: nn.Module
    """The attention module of the layer that produced the features (CLS attention and keys)."""
    config: Any
    """The vision config (its attention implementation is switched for probing)."""
    skip: int
    """Leading tokens (CLS) the attention covers but the features do not."""
    layout: Any
    """``layout(T) -> Layout`` of one image's ``T`` features."""
    tokens_per_image: int
    """Image tokens each image takes in the prompt (the vision budget applies per image)."""


@dataclass
class CallInputs:
    """The top-level inputs of one prefill call, as the model's ``forward`` received them."""

    input_ids: torch.Tensor
    """[B, N] token ids."""
    visual: torch.Tensor
    """[B, N] bool, True at image-placeholder tokens (the tokens a pruner may drop)."""
    attention_mask: torch.Tensor | None
    """[B, N] 2-D padding mask (1 = real token), or None."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Every other keyword argument (pixel_values, image_sizes, image_grid_thw, token_type_ids, ...)."""


class ModelAdapter:
    """Base adapter: LLaVA-style models whose language model is ``model.model.language_model``.

    Class attributes: ``family`` (a short unique name), ``architectures`` (model class names this
    adapter serves; matched against the class and its bases), ``transformers_versions`` (a PEP 440
    specifier the adapter narrows the library's supported range with, "" for none) and
    ``transformers_reason``. `vision_side` opts a family into the ``vision`` placement.
    """

    family: ClassVar[str] = ""
    architectures: ClassVar[tuple[str, ...]] = ()
    transformers_versions: ClassVar[str] = ""
    transformers_reason: ClassVar[str] = ""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        return any(c.__name__ in cls.architectures for c in type(model).__mro__)

    # -- structure ----------------------------------------------------------------------
    @property
    def config(self):
        return self.model.config

    @property
    def image_token_id(self) -> int:
        cfg = self.config
        value = getattr(cfg, "image_token_id", None)
        return int(value if value is not None else cfg.image_token_index)

    def decoder(self) -> nn.Module:
        """The text decoder (the module that runs the layer loop)."""
        return self.model.model.language_model

    def image_features_owner(self) -> nn.Module:
        """The module whose ``get_image_features`` encodes images (``generate`` calls it on ``base_model``)."""
        return self.model.model

    def layers(self) -> nn.ModuleList:
        return self.decoder().layers

    def attention_module(self, layer: nn.Module) -> nn.Module:
        return layer.self_attn

    def text_config(self):
        return self.decoder().config

    text_config_key: ClassVar[str] = "text_config"
    """Sub-config name that `set_attn_implementation({key: name})` switches (the text model only)."""

    def layer_type(self, index: int) -> str:
        types = getattr(self.text_config(), "layer_types", None)
        return types[index] if types else "full_attention"

    # -- layout -------------------------------------------------------------------------
    def row_layouts(self, call: CallInputs) -> list[Layout | None]:
        """One `Layout` per batch row describing its visual tokens in order (None for rows without any)."""
        raise NotImplementedError

    # -- family quirks (defaults do nothing) --------------------------------------------
    def block_sequence_ids(self, call: CallInputs, index: torch.Tensor, real: torch.Tensor) -> torch.Tensor | None:
        """Bidirectional image blocks of the kept sequence ([B, M], -1 = causal), or None."""
        return None

    def gather_lm_kwargs(self, kwargs: dict[str, Any], index: torch.Tensor, real: torch.Tensor) -> None:
        """Gather family-specific language-model inputs in place (pre-LLM placement).

        `index` [B, M] are the kept positions, `real` [B, M] is False at filler slots (ragged rows).
        """

    def install(self, state) -> list[Any]:
        """Per-instance extras (e.g. wrappers) that read the handle's `tokcompress.hf.state.CallState`;
        return undo callables run on removal."""
        return []

    def vision_side(self) -> "VisionSide | None":
        """The vision tower's parts for the ``vision`` placement, or None when the family has no support."""
        return None

    def rotary(self, decoder: nn.Module, hidden: torch.Tensor, position_ids: torch.Tensor, layer_type: str):
        """(cos, sin) for `position_ids` as the decoder would compute them (used when renumbering)."""
        rope = decoder.rotary_emb
        pos = position_ids
        if pos.dim() == 3 and pos.shape[0] == 4:  # Qwen: text row first, then t/h/w
            pos = pos[1:]
        if "layer_type" in inspect.signature(rope.forward).parameters:
            return rope(hidden, pos, layer_type)
        return rope(hidden, pos)

"""Prefill FLOPs of a decoder LM with visual-token pruning, by FastV's per-layer formula.

FastV (Chen et al., ECCV 2024, eq. 5) counts one transformer layer over ``n`` tokens of hidden size
``d`` and MLP size ``m`` as ``4nd^2 + 2n^2d + 2ndm``: the q/k/v/o projections, the two attention
products, and a two-matrix MLP. Llama-style SwiGLU MLPs have three matrices; ``mlp="swiglu"``
counts ``3ndm`` instead (closer to the real cost of those models). Layers before the pruning
layer ``K`` see ``n_text + n_visual`` tokens, layers from ``K`` on see ``n_text + keep``; ``K = 0``
is pruning before the first layer (pre-LLM). Constant factors cancel in every ratio reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

from .errors import InputError

__all__ = ["FlopsEstimate", "flops", "layer_flops", "FASTV_FORMULA", "SWIGLU_FORMULA"]

FASTV_FORMULA = "4nd^2 + 2n^2d + 2ndm"
"""FastV's per-layer FLOPs (eq. 5 of the paper)."""
SWIGLU_FORMULA = "4nd^2 + 2n^2d + 3ndm"
"""The same with a three-matrix (SwiGLU) MLP."""

Mlp = Literal["fastv", "swiglu"]


@dataclass(frozen=True)
class FlopsEstimate:
    """Unpruned and pruned prefill FLOPs of the decoder layers (one sequence)."""

    unpruned: float
    pruned: float
    formula: str

    @property
    def ratio(self) -> float:
        """pruned / unpruned."""
        return self.pruned / self.unpruned

    @property
    def reduction(self) -> float:
        """1 - ratio: the fraction of FLOPs saved."""
        return 1.0 - self.ratio

    @property
    def speedup(self) -> float:
        """unpruned / pruned: the speed-up the FLOPs predict."""
        return self.unpruned / self.pruned


def layer_flops(n: int, d: int, m: int, mlp: Mlp = "fastv") -> float:
    """FLOPs of one layer over `n` tokens: ``4nd^2 + 2n^2d + c*ndm`` with c = 2 (fastv) or 3 (swiglu)."""
    c = {"fastv": 2, "swiglu": 3}.get(mlp)
    if c is None:
        raise InputError(f"mlp must be 'fastv' or 'swiglu', got {mlp!r}")
    return 4.0 * n * d * d + 2.0 * n * n * d + c * float(n) * d * m


def _dims(config: Any) -> tuple[int, int, int]:
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    get = config.get if isinstance(config, Mapping) else lambda k: getattr(config, k, None)
    dims = []
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers"):
        value = get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"flops: config.{key} must be a positive int, got {value!r}")
        dims.append(value)
    return dims[0], dims[1], dims[2]


def _count(name: str, value: Any, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InputError(f"flops: {name} must be an int >= {minimum}, got {value!r}")
    return value


def flops(config: Any, n_text: int, n_visual: int, keep: int, layer: int = 0, mlp: Mlp = "fastv") -> FlopsEstimate:
    """Prefill FLOPs of the decoder with `keep` of `n_visual` visual tokens kept from layer `layer` on.

    `config`: a transformers config (a VLM config uses its text config) or a mapping with
    ``hidden_size``, ``intermediate_size``, ``num_hidden_layers``. `layer` = K in ``[0, layers)``.
    """
    d, m, L = _dims(config)
    n_text, n_visual = _count("n_text", n_text), _count("n_visual", n_visual)
    keep, layer = _count("keep", keep), _count("layer", layer)
    if keep > n_visual:
        raise InputError(f"flops: keep ({keep}) cannot exceed n_visual ({n_visual})")
    if n_text + keep == 0:
        raise InputError("flops: the pruned sequence would be empty (n_text + keep == 0)")
    if layer >= L:
        raise InputError(f"flops: layer must be in [0, {L}) for a {L}-layer model, got {layer}")
    full = layer_flops(n_text + n_visual, d, m, mlp)
    cut = layer_flops(n_text + keep, d, m, mlp)
    return FlopsEstimate(unpruned=L * full, pruned=layer * full + (L - layer) * cut,
                         formula=FASTV_FORMULA if mlp == "fastv" else SWIGLU_FORMULA)

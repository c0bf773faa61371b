"""From model tensors to pruner calls: each row's visual tokens as `VisualTokens`, one call per budget.

Rows are left-aligned into one batch (a `mask` marks the tail of shorter rows) with their own
`Layout`. Rows whose budgets differ (``ratio=``, or fewer visual tokens than ``keep``) are selected
in separate calls, so every row keeps exactly its own budget. Only the fields the pruner's stages
require are built.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch

from ..pruner import Pruner, resolve_budget
from ..tokens import VisualTokens
from .kept import take

__all__ = ["ModelTensors", "select_rows", "visual_tokens"]


@dataclass(frozen=True)
class ModelTensors:
    """What the placement captured for a [B, N] sequence."""

    features: torch.Tensor
    """[B, N, D] hidden states (or embeddings) at every position."""
    attention: torch.Tensor | None = None
    """[B, N] attention of the last prompt token (in-LLM probe)."""
    keys: torch.Tensor | None = None
    """[B, N, Dk] post-RoPE keys, heads flattened (in-LLM probe)."""
    attention_mask: torch.Tensor | None = None
    """[B, N] 2-D padding mask of the call (1 = real token), or None."""


def select_rows(pruner: Pruner, visual: torch.Tensor, tensors: ModelTensors, layouts: list, keep: int | None,
                ratio: float | None) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
    """Each row's kept visual positions (sequence indices), and merged features by row when a merger ran."""
    device = tensors.features.device
    chosen = [torch.zeros(0, dtype=torch.long, device=device) for _ in range(visual.shape[0])]
    merged: dict[int, torch.Tensor] = {}
    groups: dict[int, list[int]] = defaultdict(list)
    for b, n in enumerate(visual.sum(dim=1).tolist()):
        if n:
            groups[resolve_budget(n, keep, ratio)].append(b)
    for k, rows in groups.items():
        tokens, positions = visual_tokens(pruner.requires, rows, visual, tensors, layouts)
        if pruner.merger is not None:
            out = pruner.compress(tokens, keep=k)
            idx = out.indices
            merged.update({b: out.features[j] for j, b in enumerate(rows)})
        else:
            idx = pruner.select(tokens, keep=k)
        for j, b in enumerate(rows):
            chosen[b] = positions[j][idx[j]]
    return chosen, merged


def _left_aligned(positions: list[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """[R, W] index and validity of ragged position lists, padded at the end with index 0."""
    width = max(1, max(len(p) for p in positions))
    idx = torch.zeros(len(positions), width, dtype=torch.long, device=device)
    valid = torch.zeros(len(positions), width, dtype=torch.bool, device=device)
    for j, p in enumerate(positions):
        idx[j, : len(p)], valid[j, : len(p)] = p, True
    return idx, valid


def visual_tokens(needs: dict[str, Any], rows: list[int], visual: torch.Tensor, tensors: ModelTensors,
                  layouts: list) -> tuple[VisualTokens, list[torch.Tensor]]:
    """The pruner's input for `rows` and each row's visual positions (index k of the input = positions[k])."""
    device = tensors.features.device
    positions = [visual[b].nonzero().flatten() for b in rows]
    idx, valid = _left_aligned(positions, device)
    sel = torch.tensor(rows, device=device)

    def gather(t: torch.Tensor) -> torch.Tensor:
        return take(t[sel].float().to(device), idx, 1)

    fields: dict[str, Any] = {"features": gather(tensors.features)}
    if tensors.attention is not None and "attention" in needs:
        fields["attention"] = gather(tensors.attention)
    if tensors.keys is not None and "keys" in needs:
        fields["keys"] = gather(tensors.keys)
    if {"text_keys", "text_features"} & needs.keys():
        fields.update(_text_fields(needs, rows, visual, tensors))
    ragged = not bool(valid.all())
    return VisualTokens(**fields, mask=valid if ragged else None, layout=[layouts[b] for b in rows]), positions


def _text_fields(needs: dict[str, Any], rows: list[int], visual: torch.Tensor, tensors: ModelTensors) -> dict[str, Any]:
    """Text tokens after each row's last visual token (real tokens only), for text-conditioned stages."""
    device = tensors.features.device
    real = tensors.attention_mask
    real = real.to(device).bool() if real is not None else torch.ones_like(visual)
    positions = []
    for b in rows:
        after = torch.arange(int(visual[b].nonzero().max()) + 1, visual.shape[1], device=device)
        positions.append(after[real[b, after]])
    idx, mask = _left_aligned(positions, device)
    sel = torch.tensor(rows, device=device)
    out: dict[str, Any] = {"text_mask": mask}
    if "text_features" in needs:
        out["text_features"] = take(tensors.features[sel].float(), idx, 1)
    if "text_keys" in needs and tensors.keys is not None:
        out["text_keys"] = take(tensors.keys[sel].float().to(device), idx, 1)
    return out

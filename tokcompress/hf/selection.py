"""From model tensors to one pruner call: each row's visual tokens as `VisualTokens`, every row its own budget.

Rows are left-aligned into one batch (a `mask` marks the tail of shorter rows) with their own
`Layout`, and `Pruner.prune` gets one count per row, so a ``ratio`` or a ``keep`` above a row's
visual-token count keeps exactly that row's share. Only the fields the pruner's stages require are built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..budget import Budget
from ..pruner import Pruner
from ..tokens import VisualTokens
from .kept import take

__all__ = ["ModelTensors", "RowChoice", "select_rows", "replay_rows", "visual_tokens"]


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


@dataclass(frozen=True)
class RowChoice:
    """One row's kept visual positions (sequence indices, ascending) and the merger's output for them."""

    positions: torch.Tensor
    merged: torch.Tensor | None = None
    """[k] bool: which kept tokens carry merged features (None: none)."""
    features: torch.Tensor | None = None
    """[k, D] features of the kept tokens, merged where `merged` is True."""
    assignment: torch.Tensor | None = None
    """[n] long: for each of the row's visual tokens (in sequence order), the sequence position of the
    kept token it was folded into (its own for a kept token); None unless the merger assigns."""

    @property
    def sizes(self) -> torch.Tensor | None:
        """[k] float: visual tokens each kept token stands for (itself included), in `positions` order."""
        if self.assignment is None:
            return None
        slots = torch.searchsorted(self.positions, self.assignment)
        return torch.bincount(slots, minlength=len(self.positions)).float()


def select_rows(pruner: Pruner, budget: Budget, visual: torch.Tensor, tensors: ModelTensors,
                layouts: list) -> list[RowChoice]:
    """Each row's `RowChoice` (rows without visual tokens keep nothing)."""
    device = tensors.features.device
    counts = visual.sum(dim=1).tolist()
    out = [RowChoice(torch.zeros(0, dtype=torch.long, device=device)) for _ in counts]
    rows = [b for b, n in enumerate(counts) if n]
    if not rows:
        return out
    tokens, positions = visual_tokens(pruner.requires, rows, visual, tensors, layouts)
    keep = tuple(budget.count(counts[b], b) for b in rows) if isinstance(budget.keep, tuple) else None
    sel = pruner.prune(tokens, budget=Budget(keep=keep) if keep else budget)
    for j, b in enumerate(rows):
        out[b] = _row_choice(sel, j, positions[j])
    return out


def _row_choice(sel, j: int, positions: torch.Tensor) -> RowChoice:
    """Row `j` of a `Selection` over a row's visual tokens (token i = sequence position positions[i])."""
    k = sel.counts[j]
    kept = positions[sel.row(j)]
    assignment = None
    if sel.assignment is not None:
        assignment = kept[sel.assignment[j, : len(positions)]]
    if sel.merged_flags is not None and bool((merged := sel.merged_flags[j, :k]).any()):
        return RowChoice(kept, merged, sel.features[j, :k], assignment)
    return RowChoice(kept, assignment=assignment)


def replay_rows(pruner: Pruner, visual: torch.Tensor, tensors: ModelTensors, layouts: list,
                chosen: list[torch.Tensor], assignments: list[torch.Tensor]) -> list[RowChoice]:
    """Each row's `RowChoice` for a frozen selection and assignment (`PruningHandle.freeze`): the sizes, and
    the merger's features for that assignment when it can replay one (`Merger.replay`)."""
    out = [RowChoice(c, assignment=a) for c, a in zip(chosen, assignments)]
    merger = pruner.merger
    rows = [b for b, c in enumerate(chosen) if len(c)]
    if merger is None or not merger.replaces_features() or not rows:
        return out
    tokens, positions = visual_tokens(merger_needs(merger), rows, visual, tensors, layouts)
    width = max(len(chosen[b]) for b in rows)
    device = tokens.device
    keep = torch.zeros(len(rows), width, dtype=torch.long, device=device)
    slots = torch.full((len(rows), tokens.num_tokens), -1, dtype=torch.long, device=device)
    for j, b in enumerate(rows):
        index_of = {int(p): i for i, p in enumerate(positions[j].tolist())}
        keep[j, : len(chosen[b])] = torch.tensor([index_of[int(p)] for p in chosen[b]], device=device)
        keep[j, len(chosen[b]):] = keep[j, 0]
        slots[j, : len(positions[j])] = torch.searchsorted(chosen[b].to(device), assignments[b].to(device))
    merge = merger.replay(tokens, keep, slots)
    if merge is None:
        return out
    for j, b in enumerate(rows):
        k = len(chosen[b])
        merged = merge.merged[j, :k]
        if bool(merged.any()):
            out[b] = RowChoice(chosen[b], merged, merge.features[j, :k], assignments[b])
    return out


def merger_needs(merger) -> dict[str, Any]:
    return {field: [merger.name] for field in merger.requires()}


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
    fields: dict[str, Any] = {"features": _gather(tensors.features, rows, idx, device)}
    if tensors.attention is not None and "attention" in needs:
        fields["attention"] = _gather(tensors.attention, rows, idx, device)
    if tensors.keys is not None and "keys" in needs:
        fields["keys"] = _gather(tensors.keys, rows, idx, device)
    if {"text_keys", "text_features"} & needs.keys():
        fields.update(_text_fields(needs, rows, visual, tensors))
    ragged = not bool(valid.all())
    tokens = VisualTokens(**fields, mask=valid if ragged else None, layout=[layouts[b] for b in rows], check_values=False)
    return tokens, positions


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
    out: dict[str, Any] = {"text_mask": mask}
    if "text_features" in needs:
        out["text_features"] = _gather(tensors.features, rows, idx, device)
    if "text_keys" in needs and tensors.keys is not None:
        out["text_keys"] = _gather(tensors.keys, rows, idx, device)
    return out


def _gather(t: torch.Tensor, rows: list[int], idx: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Batch rows `rows` of `t` at positions `idx` [R, W], as fp32 on `device`: the rows and positions are
    taken first, so only they are copied and cast (not every row's whole sequence)."""
    if len(rows) != t.shape[0]:
        t = t[torch.tensor(rows, device=t.device)]
    return take(t, idx.to(t.device), 1).to(device, torch.float32)

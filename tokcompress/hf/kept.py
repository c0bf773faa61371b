"""The kept sequence: which positions survive pruning, and gathering model tensors to them.

Every non-visual token (text, wrappers, padding) is kept, plus the selected visual tokens, in their
original order. Rows that keep different numbers of tokens (different visual-token counts per row)
are left-padded with *filler* slots up to the longest row: a filler repeats position 0, is masked
out of every attention mask and is never visual, exactly like the left padding ``generate`` uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..graphs.base import take_rows

__all__ = ["Kept", "build_kept", "take"]


@dataclass(frozen=True)
class Kept:
    """Kept positions of a [B, N] sequence as a [B, M] sequence."""

    index: torch.Tensor
    """[B, M] long: source position of each kept slot (fillers point at 0)."""
    real: torch.Tensor
    """[B, M] bool: False at filler slots."""
    visual: torch.Tensor
    """[B, M] bool: the slot holds a kept visual token."""
    dropped_before: torch.Tensor
    """[B, M] long: visual tokens dropped before each slot's source position (for renumbering)."""
    dropped: torch.Tensor
    """[B] long: visual tokens dropped per row."""
    n: int
    """Original sequence length N."""

    @property
    def m(self) -> int:
        return self.index.shape[1]

    def padding(self, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """[B, M] bool 2-D mask of the kept sequence: the original mask gathered, fillers False."""
        if attention_mask is None:
            return self.real.clone()
        return torch.gather(attention_mask.to(self.index.device).bool(), 1, self.index) & self.real


def build_kept(visual: torch.Tensor, chosen: list[torch.Tensor]) -> Kept:
    """`Kept` from the [B, N] visual mask and each row's chosen visual positions (sequence indices)."""
    B, N = visual.shape
    device = visual.device
    rows = []
    dropped_mask = visual.clone()
    for b in range(B):
        picks = chosen[b].to(device)
        dropped_mask[b, picks] = False
        rows.append(torch.sort(torch.cat([(~visual[b]).nonzero().flatten(), picks])).values)
    M = max(len(r) for r in rows)
    index = torch.zeros(B, M, dtype=torch.long, device=device)
    real = torch.zeros(B, M, dtype=torch.bool, device=device)
    for b, r in enumerate(rows):
        index[b, M - len(r):] = r
        real[b, M - len(r):] = True
    before = torch.cumsum(dropped_mask.long(), dim=1) - dropped_mask.long()
    return Kept(
        index=index,
        real=real,
        visual=torch.gather(visual, 1, index) & real,
        dropped_before=torch.gather(before, 1, index).masked_fill(~real, 0),
        dropped=dropped_mask.sum(dim=1),
        n=N,
    )


def take(t: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
    """Gather `t` along sequence axis `dim` with a [B, M] `index`; the batch axis is ``dim - 1``.

    A batch axis of size 1 (positions shared by every row) is broadcast to B first.
    """
    dim = dim % t.dim()
    bdim = dim - 1
    B, M = index.shape
    if dim == 1 and t.shape[0] == B:  # [B, N, ...]: an index_select, without an index as large as the result
        return take_rows(t, index.to(t.device))
    if t.shape[bdim] != B:
        t = t.expand(*t.shape[:bdim], B, *t.shape[bdim + 1:])
    view = [1] * t.dim()
    view[bdim], view[dim] = B, M
    shape = list(t.shape)
    shape[dim] = M
    return torch.gather(t, dim, index.to(t.device).view(view).expand(shape))

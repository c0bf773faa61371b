"""Where the `pool` baseline's cells lie: the budget split over a layout's views, each view's pooled shape.

Pooling is 2-D average pooling of each grid down to its share of the budget, the token-level
equivalent of downsampling the image. One place computes the cells, so the selector (which token
stands for each cell) and the merger (the cell's mean) cannot disagree.

Views: every `Grid`'s patches form an ``rows x cols`` view; off-grid tokens (an `OffGrid` segment, or
a ``Grid(newline=True)``'s newline tokens) form a ``1 x count`` view, pooled along their order.

Budget over views: view ``v`` of ``n_v`` of the row's ``N`` tokens gets ``share(keep, n_v / N)``
(`tokcompress.budget.share`: ``floor(keep * n_v / N + 1e-9)``); the tokens this leaves over go one
each to the views with the largest remainder ``keep * n_v / N - share``, the earlier view on ties.

Cells of an ``h x w`` view with budget ``k`` (1 <= k <= h * w), exactly ``k`` of them:

1. ``h'`` bands of rows: the nearest integer to ``h * sqrt(k / (h * w))`` (= ``sqrt(k * h / w)``,
   halves up, computed in integers), kept within ``[ceil(k / w), min(h, k)]`` so every band holds 1 to
   ``w`` cells. The cells are then about square: the pooled grid keeps the image's aspect ratio.
2. Each band has ``q = k // h'`` cells, and the ``r = k % h'`` bands at ``floor((j + 1/2) * h' / r)``,
   ``j < r`` (evenly spaced, the `uniform` selector's rule) one more: when ``k = h' * w'`` the pooled
   grid is the rectangle ``h' x w'``; otherwise the leftover budget widens some bands by one cell.
3. Bins are `torch.nn.functional.adaptive_avg_pool2d`'s: bin ``i`` of ``m`` over ``n`` covers
   ``[floor(i * n / m), ceil((i + 1) * n / m))``; band ``i``'s rows are row bin ``i`` of ``h'`` and
   its cells' columns the column bins of its width. Bins of neighbouring cells overlap by one row or
   column when ``m`` does not divide ``n``, as in ``adaptive_avg_pool2d``.

A rectangular pooled grid therefore averages exactly what ``adaptive_avg_pool2d(x, (h', w'))`` does;
``k = h * w`` gives one cell per token. Cells are listed in raster order (band by band, left to right).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from tokcompress.budget import split as split_budget  # re-exported: the budget over views
from tokcompress.layout import Grid, Layout

__all__ = ["Cells", "View", "views", "split_budget", "pooled_bands", "band_widths", "bins", "cells"]


@dataclass(frozen=True)
class View:
    """One view of a row: the ordinals (among the row's valid tokens) of its ``[h, w]`` tokens, row-major."""

    ordinals: torch.Tensor
    """LongTensor ``[h, w]``: ``ordinals[r, c]`` is the token at row r, column c of the view."""
    kind: str

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.ordinals.shape[0]), int(self.ordinals.shape[1])

    @property
    def size(self) -> int:
        return self.ordinals.numel()


@dataclass(frozen=True)
class Cells:
    """``k`` cells of an ``h x w`` view in raster order: cell ``i`` covers rows ``[r0, r1)``, columns ``[c0, c1)``."""

    r0: torch.Tensor
    r1: torch.Tensor
    c0: torch.Tensor
    c1: torch.Tensor

    def __len__(self) -> int:
        return len(self.r0)

    def sizes(self) -> torch.Tensor:
        """Tokens per cell, ``[k]``."""
        return (self.r1 - self.r0) * (self.c1 - self.c0)

    def centres(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each cell's centre token (row, column); an even span's centre is its upper / left middle token."""
        return (self.r0 + self.r1 - 1) // 2, (self.c0 + self.c1 - 1) // 2

    def members(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(cell, row, col)`` of every (cell, token) pair, each cell's tokens row-major."""
        sizes = self.sizes()
        cell = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
        offset = torch.arange(int(sizes.sum())) - (torch.cumsum(sizes, 0) - sizes)[cell]
        width = (self.c1 - self.c0)[cell]
        return cell, self.r0[cell] + offset // width, self.c0[cell] + offset % width


def views(layout: Layout) -> list[View]:
    """The layout's views in token order: each grid's patches, then its newline tokens; each off-grid segment."""
    out, start = [], 0
    for seg in layout.segments:
        if isinstance(seg, Grid):
            stride = seg.cols + int(seg.newline)
            rows = start + torch.arange(seg.rows)[:, None] * stride
            out.append(View(rows + torch.arange(seg.cols)[None, :], seg.kind))
            if seg.newline:
                out.append(View((rows + seg.cols).T, "newline"))
        else:
            out.append(View(start + torch.arange(seg.count)[None, :], seg.kind))
        start += seg.num_tokens
    return out


def pooled_bands(h: int, w: int, k: int) -> int:
    """Bands of rows ``h'``: ``round(sqrt(k * h / w))`` (halves up) within ``[ceil(k / w), min(h, k)]``."""
    nearest = (math.isqrt(4 * k * h // w) + 1) // 2  # largest r with (2r - 1)^2 <= 4kh/w: floor(sqrt(kh/w) + 1/2)
    return min(min(h, k), max(-(-k // w), nearest))


def band_widths(bands: int, k: int) -> list[int]:
    """Cells per band: ``k // bands``, one more in the ``k % bands`` evenly spaced bands."""
    q, r = divmod(k, bands)
    widths = [q] * bands
    for j in range(r):
        widths[(2 * j + 1) * bands // (2 * r)] += 1  # floor((j + 1/2) * bands / r), exactly
    return widths


def bins(n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``adaptive_avg_pool``'s ``m`` bins over ``n``: starts ``floor(i n / m)``, ends ``ceil((i + 1) n / m)``."""
    i = torch.arange(m)
    return (i * n) // m, -((-(i + 1) * n) // m)


def cells(h: int, w: int, k: int) -> Cells:
    """The ``k`` cells of an ``h x w`` view (see the module docstring); ``k = 0`` gives none."""
    if not 0 <= k <= h * w:
        raise ValueError(f"a {h}x{w} view cannot be pooled into {k} cells; expected 0 <= k <= {h * w}")
    if k == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return Cells(empty, empty, empty, empty)
    bands = pooled_bands(h, w, k)
    widths = band_widths(bands, k)
    r0, r1 = bins(h, bands)
    cols = {width: bins(w, width) for width in set(widths)}
    reps = torch.tensor(widths)
    return Cells(
        torch.repeat_interleave(r0, reps),
        torch.repeat_interleave(r1, reps),
        torch.cat([cols[width][0] for width in widths]),
        torch.cat([cols[width][1] for width in widths]),
    )

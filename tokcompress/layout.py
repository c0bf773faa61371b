"""Where each visual token sits: grids (images, tiles, crops, frames) and tokens on no grid.

A model's visual span is a sequence of segments laid end to end. A `Grid` segment is an
``rows x cols`` patch grid in row-major order, optionally followed by one newline token per
row (LLaVA-NeXT's ``image_newline``). An `OffGrid` segment holds tokens with no 2-D position
(a separator, a register token). Spatial stages use `Layout.coords()`; semantic stages ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Union

import torch

__all__ = ["Grid", "OffGrid", "Layout", "OFF_GRID"]

OFF_GRID = -1
"""Row/column value of a token that has no 2-D position."""


@dataclass(frozen=True)
class Grid:
    """An ``rows x cols`` patch grid, row-major; ``newline`` appends one off-grid token per row."""

    rows: int
    cols: int
    kind: str = "image"  # free label: "image", "base", "crop", "tile", "thumbnail", "frame", ...
    newline: bool = False

    def __post_init__(self) -> None:
        for field in ("rows", "cols"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Grid.{field} must be a positive int, got {value!r}")

    @property
    def num_tokens(self) -> int:
        return self.rows * (self.cols + int(self.newline))


@dataclass(frozen=True)
class OffGrid:
    """``count`` tokens that are on no grid (only semantic relations apply to them)."""

    count: int
    kind: str = "offgrid"

    def __post_init__(self) -> None:
        if not isinstance(self.count, int) or isinstance(self.count, bool) or self.count < 1:
            raise ValueError(f"OffGrid.count must be a positive int, got {self.count!r}")

    @property
    def num_tokens(self) -> int:
        return self.count


Segment = Union[Grid, OffGrid]


@dataclass(frozen=True)
class Layout:
    """The 2-D arrangement of one sample's visual tokens, as consecutive segments."""

    segments: tuple[Segment, ...]

    def __post_init__(self) -> None:
        segments = tuple(self.segments)
        if not segments:
            raise ValueError("Layout needs at least one segment")
        for i, seg in enumerate(segments):
            if not isinstance(seg, (Grid, OffGrid)):
                raise TypeError(f"Layout.segments[{i}] must be Grid or OffGrid, got {type(seg).__name__}")
        object.__setattr__(self, "segments", segments)

    @classmethod
    def grid(cls, rows: int, cols: int | None = None) -> "Layout":
        """A single image grid (``cols`` defaults to ``rows``)."""
        return cls((Grid(rows, rows if cols is None else cols),))

    @classmethod
    def square(cls, num_tokens: int) -> "Layout":
        """A single square grid of ``num_tokens`` tokens; error if ``num_tokens`` is not a square."""
        side = int(round(num_tokens**0.5))
        if side * side != num_tokens:
            raise ValueError(f"cannot infer a square grid from {num_tokens} tokens; pass a Layout")
        return cls.grid(side)

    @cached_property
    def num_tokens(self) -> int:
        return sum(seg.num_tokens for seg in self.segments)

    @property
    def grids(self) -> tuple[Grid, ...]:
        return tuple(s for s in self.segments if isinstance(s, Grid))

    @cached_property
    def _coords(self) -> torch.Tensor:
        parts = []
        for view, seg in enumerate(self.segments):
            if isinstance(seg, OffGrid):
                parts.append(torch.tensor([[view, OFF_GRID, OFF_GRID]]).expand(seg.count, 3))
                continue
            cols = seg.cols + int(seg.newline)
            r = torch.arange(seg.rows).repeat_interleave(cols)
            c = torch.arange(cols).repeat(seg.rows)
            if seg.newline:
                on_grid = c < seg.cols
                r = torch.where(on_grid, r, OFF_GRID)
                c = torch.where(on_grid, c, OFF_GRID)
            parts.append(torch.stack([torch.full_like(r, view), r, c], dim=1))
        return torch.cat(parts).long()

    def coords(self) -> torch.Tensor:
        """LongTensor ``[N, 3]`` of ``(segment, row, col)``; row and col are ``OFF_GRID`` off the grid."""
        return self._coords

    def describe(self) -> str:
        parts = []
        for seg in self.segments:
            if isinstance(seg, Grid):
                parts.append(f"{seg.kind} {seg.rows}x{seg.cols}{' +newline' if seg.newline else ''}")
            else:
                parts.append(f"{seg.kind} x{seg.count}")
        return " | ".join(parts)

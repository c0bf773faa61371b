"""`Budget`: how many visual tokens to keep, and the one rounding rule every share of a count uses.

A budget is a count (``keep``, one for every row or one per row) or a fraction (``ratio``). The
pruner, the Hugging Face integration (per sample, per image) and the study tooling all resolve it
here, so ``ratio=0.25`` means the same number of tokens everywhere.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Annotated, Any, Optional, Sequence, Union

from pydantic import ConfigDict, Field, field_validator, model_validator

from .component import StrictNumbers
from .errors import InputError, shorten

__all__ = ["Budget", "share", "split", "EPSILON"]

EPSILON = 1e-9
"""Tolerance added before flooring, so binary float error cannot lose a token (``576 * 0.25``, ``0.7 * 10``)."""


def share(count: int, fraction: float) -> int:
    """``floor(count * fraction + 1e-9)``, at most `count`: the rounding rule of every share of a count
    (budget ratios, D2Pruner's pivots, VisionZip's contextual tokens)."""
    return min(count, math.floor(count * fraction + EPSILON))


def split(keep: int, sizes: Sequence[int]) -> list[int]:
    """`keep` over parts of `sizes` tokens: each part's `share`, the leftover one each to the parts with the
    largest remainder (the earlier part on ties). Sums to `keep`; no part above its size while keep <= sum(sizes)."""
    total = sum(sizes)
    exact = [keep * (n / total) for n in sizes]
    out = [share(keep, n / total) for n in sizes]
    order = sorted(range(len(sizes)), key=lambda v: (-(exact[v] - out[v]), v))
    for v in order[: keep - sum(out)]:
        out[v] += 1
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class Budget(StrictNumbers):
    """Visual tokens to keep: exactly one of ``keep`` (a count, or one count per row) and ``ratio``.

    Rounding rule: ``max(1, floor(n * ratio + 1e-9))`` of a row's ``n`` visual tokens. A count at or
    above ``n`` keeps everything. A plain ``8`` / ``0.25`` is shorthand for ``keep`` / ``ratio``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    keep: Optional[Union[Annotated[int, Field(ge=1)], tuple[Annotated[int, Field(ge=1)], ...]]] = None
    """Tokens kept per row (a count >= 1), or one count per row."""
    ratio: Optional[float] = Field(None, gt=0, le=1)
    """Share of each row's visual tokens, in (0, 1]."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"a budget must be a keep count (int >= 1) or a ratio (number in (0, 1]), got {value!r}")
        if _is_int(value):
            return {"keep": int(value)}
        if _is_real(value):
            return {"ratio": float(value)}
        return value

    @field_validator("keep", mode="before")
    @classmethod
    def _keep(cls, value: Any) -> Any:
        if value is None:
            return None
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if not _is_int(v):
                raise ValueError(f"keep must be an int, got {shorten(v)} ({type(v).__name__}); a list of ints gives one "
                                 "count per row")
            if v < 1:
                raise ValueError(f"keep must be >= 1, got {shorten(v)}")
        if isinstance(value, (list, tuple)):
            if not values:
                raise ValueError("keep: a per-row list needs at least one count")
            return tuple(int(v) for v in values)
        return int(value)

    @field_validator("ratio", mode="before")
    @classmethod
    def _ratio_is_a_number(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, numbers.Real):  # "0.5" is a typo, not a ratio
            raise ValueError(f"ratio must be a finite number in (0, 1], got {shorten(value)} ({type(value).__name__})")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> "Budget":
        if (self.keep is None) == (self.ratio is None):
            raise ValueError(f"pass exactly one of keep= or ratio= (a count or a fraction), got keep={self.keep!r}, "
                             f"ratio={self.ratio!r}")
        return self

    @classmethod
    def of(cls, keep: Any = None, ratio: Any = None, budget: "Budget | None" = None) -> "Budget":
        """A validated budget from keyword arguments (or `budget` as is); bad values are `InputError`s."""
        if budget is not None:
            if keep is not None or ratio is not None:
                raise InputError("pass budget= or keep=/ratio=, not both")
            if not isinstance(budget, Budget):
                raise InputError(f"budget= must be a tokcompress.Budget, got {type(budget).__name__}")
            return budget
        if ratio is None and type(keep) is int and keep >= 1:  # the common call: one validation per count
            return _plain_keep(keep)
        from pydantic import ValidationError

        try:
            return cls(keep=keep, ratio=ratio)
        except ValidationError as exc:
            lines = []
            for e in exc.errors():
                msg = e["msg"].removeprefix("Value error, ")
                if e["loc"] and e["loc"][0] == "ratio":
                    msg = f"ratio must be a number in (0, 1], got {shorten(ratio)} ({msg})"
                lines.append(msg)
            raise InputError("; ".join(lines)) from None

    # -- resolving ------------------------------------------------------------------------
    def count(self, n: int, row: int = 0) -> int:
        """Tokens kept out of `n` (in row `row`, for a per-row ``keep``)."""
        if self.keep is not None:
            keep = self.keep
            if isinstance(keep, tuple):
                if row >= len(keep):
                    raise InputError(f"keep has {len(keep)} per-row counts but row {row} was asked for")
                keep = keep[row]
            return min(keep, n)
        return min(n, max(1, share(n, self.ratio)))

    def counts(self, sizes: Sequence[int]) -> list[int]:
        """One count per row of `sizes` valid tokens; a per-row ``keep`` must have one entry per row."""
        if isinstance(self.keep, tuple) and len(self.keep) != len(sizes):
            raise InputError(f"keep has {len(self.keep)} per-row counts for a batch of {len(sizes)} rows")
        return [self.count(int(n), b) for b, n in enumerate(sizes)]

    @property
    def label(self) -> str:
        """``keep=8``, ``keep=8,4`` or ``ratio=0.25`` (repr: exact round trip)."""
        if self.keep is None:
            return f"ratio={self.ratio!r}"
        return "keep=" + (",".join(map(str, self.keep)) if isinstance(self.keep, tuple) else str(self.keep))

    def kwargs(self) -> dict[str, Any]:
        return {"keep": self.keep} if self.keep is not None else {"ratio": self.ratio}


@functools.lru_cache(maxsize=256)
def _plain_keep(keep: int) -> Budget:
    """Budgets are frozen, so one validated instance per plain count serves every call."""
    return Budget(keep=keep)

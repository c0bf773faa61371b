"""The one place the study tooling touches the transformers integration (`tokcompress.attach`).

Everything here is a thin adapter: `pruning(model, spec, budget)` is the context manager that
applies a pruner to a model, and `PruneStats.read(handle)` turns the handle's statistics into the
few numbers a result row records.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

__all__ = ["PruneStats", "pruning", "flops_ratio"]


@dataclass(frozen=True)
class PruneStats:
    """Visual tokens before/after pruning (first sample of the last call), FLOPs ratio, selection seconds."""

    visual_before: int
    visual_after: int
    flops_ratio: float
    select_s: float

    @classmethod
    def read(cls, handle: Any) -> "PruneStats":
        stats = handle.stats
        before, after = _first(stats.visual_before), _first(stats.visual_after)
        return cls(int(before), int(after), float(stats.flops_ratio), float(getattr(stats, "select_seconds", 0.0)))


def _first(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return value[0]
    if hasattr(value, "tolist"):
        v = value.tolist()
        return v[0] if isinstance(v, list) else v
    return value


@contextmanager
def pruning(model: Any, spec: Any, budget: dict[str, Any]) -> Iterator[Any]:
    """Apply `spec` (a spec, preset name or built `Pruner`) with ``keep=``/``ratio=`` to `model` inside the block."""
    import tokcompress

    with tokcompress.attach(model, spec, **budget) as handle:
        yield handle


def flops_ratio(*args: Any, **kwargs: Any) -> Any:
    import tokcompress

    return tokcompress.flops(*args, **kwargs)

"""Run one prompt through a model unpruned and with several pruners; time prefill, compare generations.

Shared by ``python -m tokcompress.demo`` and ``tokcompress generate``. Prefill time is the median
of `repeats` forward passes as ``generate`` runs its first step (``use_cache=True``,
``logits_to_keep=1``), selection included; runs of the configurations are interleaved so that
load on a shared machine spreads evenly over them.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

__all__ = ["RunResult", "compare", "render_table", "byte_tokens", "bytes_text"]


@dataclass
class RunResult:
    """One configuration: ``name`` (preset, or "none"), what it kept, and how long prefill took."""

    name: str
    placement: str = "-"
    layer: int = 0
    visual_before: int = 0
    visual_after: int = 0
    flops_reduction: float = 0.0
    select_ms: float = 0.0
    prefill_ms: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    speedup: float = 1.0
    agree: int = 0

    @property
    def prefill_median_ms(self) -> float:
        return statistics.median(self.prefill_ms) if self.prefill_ms else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "placement": self.placement, "layer": self.layer, "visual_before": self.visual_before,
            "visual_after": self.visual_after, "flops_reduction": self.flops_reduction, "select_ms": self.select_ms,
            "prefill_ms": self.prefill_median_ms, "prefill_runs_ms": self.prefill_ms, "speedup": self.speedup,
            "tokens": self.tokens, "text": self.text, "agree": self.agree,
        }


def byte_tokens(text: str, offset: int = 3) -> list[int]:
    """A tokenizer for random tiny models: one id per UTF-8 byte, shifted past pad/bos/eos."""
    return [b + offset for b in text.encode()]


def bytes_text(ids: Sequence[int], offset: int = 3) -> str:
    """Inverse of `byte_tokens`, one character per byte (Latin-1, so noise stays printable); others as ``<id>``."""
    return "".join(chr(i - offset) if offset <= i < offset + 256 else f"<{i}>" for i in ids)


def _label(config: Any) -> str:
    from ..pruner import Pruner

    if config is None:
        return "none"
    if isinstance(config, Pruner):
        return config.spec.name or "custom"
    return str(config)


def _prefill_ms(model, inputs: dict[str, Any]) -> float:
    start = time.perf_counter()
    model(**inputs, use_cache=True, logits_to_keep=1)
    return (time.perf_counter() - start) * 1000.0


@torch.no_grad()
def compare(model, inputs: dict[str, Any], presets: Sequence[str], *, keep: int | None = None, ratio: float | None = None,
            max_new_tokens: int = 16, repeats: int = 3, decode=None, generate_kwargs: dict[str, Any] | None = None,
            ) -> list[RunResult]:
    """"none" plus one `RunResult` per preset (name, spec path or `Pruner`), generation and timing done."""
    import tokcompress

    gen = {"max_new_tokens": max_new_tokens, "do_sample": False, **(generate_kwargs or {})}
    n_prompt = inputs["input_ids"].shape[1]
    configs: list[Any] = [None, *presets]
    results = [RunResult(name=_label(c)) for c in configs]

    def attached(config):
        return tokcompress.attach(model, config, keep=keep, ratio=ratio) if config is not None else None

    for config, result in zip(configs, results):  # generation, stats, one warm-up prefill each
        handle = attached(config)
        try:
            out = model.generate(**inputs, **gen)
            _prefill_ms(model, inputs)
            if handle is not None and handle.stats is not None:
                s = handle.stats
                result.placement, result.layer = s.placement, s.layer
                result.visual_before, result.visual_after = s.visual_before[0], s.visual_after[0]
                result.flops_reduction, result.select_ms = s.flops_reduction, s.select_seconds * 1000.0
        finally:
            if handle is not None:
                handle.remove()
        result.tokens = out[0, n_prompt:].tolist()
        result.text = decode(result.tokens) if decode is not None else ""
    base = results[0]
    base.visual_before = base.visual_after = results[1].visual_before if len(results) > 1 else 0
    for _ in range(repeats):  # interleaved timing
        for config, result in zip(configs, results):
            handle = attached(config)
            try:
                result.prefill_ms.append(_prefill_ms(model, inputs))
            finally:
                if handle is not None:
                    handle.remove()
    for result in results:
        result.speedup = base.prefill_median_ms / result.prefill_median_ms
        same = 0
        for a, b in zip(result.tokens, base.tokens):
            if a != b:
                break
            same += 1
        result.agree = same
    return results


def render_table(results: Sequence[RunResult], title: str):
    """A rich `Table`: kept tokens, FLOPs reduction, prefill time and speed-up, agreement with unpruned.

    "same tokens" counts the leading generated tokens equal to the unpruned model's (greedy).
    """
    from rich.table import Table

    table = Table(title=title)
    for col, justify in [("pruner", "left"), ("where", "left"), ("visual kept", "right"), ("FLOPs saved", "right"),
                         ("prefill ms", "right"), ("speed-up", "right"), ("select ms", "right"),
                         ("same tokens", "right")]:
        table.add_column(col, justify=justify)
    for r in results:
        where = "-" if r.name == "none" else (f"K={r.layer}" if r.placement == "layer" else r.placement)
        kept = f"{r.visual_after}/{r.visual_before}" if r.visual_before else "-"
        same = f"{r.agree}/{len(r.tokens)}" if r.name != "none" else "(reference)"
        table.add_row(r.name, where, kept, f"{r.flops_reduction:.1%}", f"{r.prefill_median_ms:.1f}", f"{r.speedup:.2f}x",
                      "-" if r.name == "none" else f"{r.select_ms:.1f}", same)
    return table

"""Run one prompt through a model unpruned and with several pruners; time prefill, compare generations.

Shared by ``tokcompress demo`` and ``tokcompress generate``. Prefill is one forward as ``generate``
runs its first step (``use_cache=True``, ``logits_to_keep=1``), selection included, timed with
`tokcompress.timing.time_paired`: warm-up, then rounds in which every configuration runs once in a
balanced order (`timing.balanced_orders`); a speed-up is the median of per-round ratios to the
unpruned run of the same round, shown with its spread and next to the speed-up the FLOPs predict.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..timing import Ratio, time_paired

__all__ = ["RunResult", "compare", "render_table", "byte_tokens", "bytes_text", "OVERHEAD_BOUND_MS"]

OVERHEAD_BOUND_MS = 50.0
"""Below this unpruned prefill time a model is overhead-bound (Python, hooks, kernel launches dominate):
tables then show FLOPs, not a measured speed-up, because the timing says nothing about pruning."""


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
    speedup: Ratio | None = None
    threads: int = 0
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    agree: int = 0
    selection: list[torch.Tensor] | None = None
    """Kept visual positions of each row (the handle's ``last_selection``)."""

    @property
    def prefill_median_ms(self) -> float:
        import statistics

        return statistics.median(self.prefill_ms) if self.prefill_ms else float("nan")

    @property
    def predicted_speedup(self) -> float:
        """Decoder prefill speed-up the FLOPs predict (1 / FLOPs ratio)."""
        return 1.0 / (1.0 - self.flops_reduction)

    def as_dict(self) -> dict[str, Any]:
        ratio = self.speedup
        return {
            "name": self.name, "placement": self.placement, "layer": self.layer, "visual_before": self.visual_before,
            "visual_after": self.visual_after, "flops_reduction": self.flops_reduction, "select_ms": self.select_ms,
            "prefill_ms": self.prefill_median_ms, "prefill_runs_ms": self.prefill_ms, "threads": self.threads,
            "speedup": ratio.median if ratio else None, "speedup_low": ratio.low if ratio else None,
            "speedup_high": ratio.high if ratio else None, "predicted_speedup": self.predicted_speedup,
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


@torch.no_grad()
def compare(model, inputs: dict[str, Any], presets: Sequence[Any], *, keep: Any = None, ratio: Any = None,
            max_new_tokens: int = 16, repeats: int = 5, warmup: int = 1, decode=None,
            generate_kwargs: dict[str, Any] | None = None) -> list[RunResult]:
    """"none" plus one `RunResult` per preset (name, spec path or `Pruner`): generation, then paired timing."""
    import tokcompress

    gen = {"max_new_tokens": max_new_tokens, "do_sample": False, **(generate_kwargs or {})}
    n_prompt = inputs["input_ids"].shape[1]
    configs: list[Any] = [None, *presets]
    results = [RunResult(name=_label(c)) for c in configs]
    built = [tokcompress.build_pruner(c) if c is not None and not isinstance(c, tokcompress.Pruner) else c for c in configs]

    def attached(pruner):
        return tokcompress.attach(model, pruner, keep=keep, ratio=ratio) if pruner is not None else contextlib.nullcontext()

    for pruner, result in zip(built, results):  # generation and what pruning did
        with attached(pruner) as handle:
            out = model.generate(**inputs, **gen)
            if handle is not None and handle.stats is not None:
                s = handle.stats
                result.placement, result.layer = s.placement, s.layer
                result.visual_before, result.visual_after = s.visual_before[0], s.visual_after[0]
                result.flops_reduction, result.select_ms = s.flops_reduction, s.select_seconds * 1000.0
                result.selection = handle.last_selection
        result.tokens = out[0, n_prompt:].tolist()
        result.text = decode(result.tokens) if decode is not None else ""
    base = results[0]
    base.visual_before = base.visual_after = results[1].visual_before if len(results) > 1 else 0
    forward = lambda: model(**inputs, use_cache=True, logits_to_keep=1)  # noqa: E731 - generate's first step
    names = [f"{i}:{r.name}" for i, r in enumerate(results)]
    timing = time_paired({n: forward for n in names}, names[0], rounds=repeats, warmup=warmup,
                         around={n: (lambda p=p: attached(p)) for n, p in zip(names, built)})
    for name, result in zip(names, results):
        result.prefill_ms, result.speedup, result.threads = timing.ms[name], timing.speedup(name), timing.threads
        same = 0
        for a, b in zip(result.tokens, base.tokens):
            if a != b:
                break
            same += 1
        result.agree = same
    return results


def render_table(results: Sequence[RunResult], title: str, *, min_prefill_ms: float = OVERHEAD_BOUND_MS):
    """A rich `Table`: kept tokens, FLOPs reduction and the speed-up they predict, prefill time and the
    measured speed-up (median [min-max] of paired rounds), agreement with unpruned.

    When the unpruned prefill takes less than `min_prefill_ms`, the model is overhead-bound and the
    measured column says so instead of showing a ratio. "same tokens" counts the leading generated
    tokens equal to the unpruned model's (greedy).
    """
    from rich.table import Table

    table = Table(title=title)
    for col, justify in [("pruner", "left"), ("where", "left"), ("visual kept", "right"), ("FLOPs saved", "right"),
                         ("predicted", "right"), ("prefill ms", "right"), ("measured speed-up", "right"),
                         ("select ms", "right"), ("same tokens", "right")]:
        table.add_column(col, justify=justify)
    bound = bool(results) and results[0].prefill_median_ms < min_prefill_ms
    for r in results:
        ref = r.name == "none"
        where = "-" if ref else (f"K={r.layer}" if r.placement == "layer" else r.placement)
        kept = f"{r.visual_after}/{r.visual_before}" if r.visual_before else "-"
        same = f"{r.agree}/{len(r.tokens)}" if not ref else "(reference)"
        if ref:
            measured = "(reference)"
        elif bound:
            measured = "n/a: overhead-bound"
        else:
            measured = r.speedup.format() if r.speedup else "-"
        table.add_row(r.name, where, kept, f"{r.flops_reduction:.1%}", "-" if ref else f"{r.predicted_speedup:.2f}x",
                      f"{r.prefill_median_ms:.1f}", measured, "-" if ref else f"{r.select_ms:.1f}", same)
    return table

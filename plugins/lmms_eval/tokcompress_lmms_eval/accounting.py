"""What pruning did to each sample, in lmms-eval's per-sample ``token_counts``, and its run totals.

Per sample (`PruningCounts`, logged under ``token_counts`` with ``--log_samples``): ``input_tokens``
(tokens the decoder's last layers processed in prefill: text plus kept visual tokens, padding
excluded), ``output_tokens``, ``visual_tokens_before`` / ``visual_tokens_after``, ``flops_ratio``
(pruned over unpruned decoder prefill FLOPs, FastV's formula), ``prefill_ms`` (the first forward of
the batch the sample ran in, selection included) and ``select_ms`` (the pruner's selection for that
batch). Per run: the means land in the results JSON under ``throughput`` as ``avg_tokcompress_*``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Optional

import torch
from lmms_eval.api.instance import TokenCounts

__all__ = ["PruningCounts", "PrefillTimer", "row_counts", "RunTotals"]

_EXTRA = ("visual_tokens_before", "visual_tokens_after", "flops_ratio", "prefill_ms", "select_ms", "batch_size")


@dataclass
class PruningCounts(TokenCounts):
    """lmms-eval's `TokenCounts` plus what pruning did to the sample (see the module docstring)."""

    visual_tokens_before: Optional[int] = None
    visual_tokens_after: Optional[int] = None
    flops_ratio: Optional[float] = None
    prefill_ms: Optional[float] = None
    select_ms: Optional[float] = None
    batch_size: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = super().to_dict()
        out.update({k: getattr(self, k) for k in _EXTRA if getattr(self, k) is not None})
        return out


class PrefillTimer:
    """Wall time of the first forward after `arm` (``generate``'s prefill), synchronised on CUDA."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.device, self.ms = device, None
        self._armed, self._start = False, None
        self._hooks = [model.register_forward_pre_hook(self._before), model.register_forward_hook(self._after)]

    def arm(self) -> None:
        self.ms, self._armed, self._start = None, True, None

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _before(self, *_: Any) -> None:
        if self._armed and self._start is None:
            self._sync()
            self._start = time.perf_counter()

    def _after(self, *_: Any) -> None:
        if self._armed and self._start is not None:
            self._sync()
            self.ms = (time.perf_counter() - self._start) * 1e3
            self._armed = False

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()


def row_counts(model, inputs: dict[str, torch.Tensor], image_token_id: int, stats: Any, prefill_ms: float | None,
               outputs: list[int]) -> list[PruningCounts]:
    """One `PruningCounts` per batch row: from the handle's `PruneStats` when this call was pruned, else counted
    from the inputs (unpruned: nothing dropped, FLOPs ratio 1)."""
    import tokcompress

    ids = inputs["input_ids"]
    real = inputs["attention_mask"].bool() if inputs.get("attention_mask") is not None else torch.ones_like(ids, dtype=torch.bool)
    if stats is not None:
        before, after, text, layer = list(stats.visual_before), list(stats.visual_after), list(stats.text), stats.layer
        select_ms = stats.select_seconds * 1e3
    else:
        visual = (ids == image_token_id) & real
        before = after = visual.sum(dim=1).tolist()
        text, layer, select_ms = (real & ~visual).sum(dim=1).tolist(), 0, None
    rows = []
    for b in range(ids.shape[0]):
        ratio = 1.0 if before[b] == after[b] else tokcompress.flops(model.config, text[b], before[b], after[b], layer).ratio
        rows.append(PruningCounts(input_tokens=int(text[b] + after[b]), output_tokens=outputs[b],
                                  visual_tokens_before=int(before[b]), visual_tokens_after=int(after[b]),
                                  flops_ratio=float(ratio), prefill_ms=prefill_ms, select_ms=select_ms,
                                  batch_size=int(ids.shape[0])))
    return rows


class RunTotals:
    """Per-sample counts of one lmms-eval request type, published as run means through lmms-eval's metric log."""

    def __init__(self) -> None:
        self.rows: list[PruningCounts] = []
        self.seconds = 0.0

    def add(self, rows: list[PruningCounts], seconds: float) -> None:
        self.rows += rows
        self.seconds += seconds

    def summary(self) -> dict[str, float]:
        def stat(key: str, of) -> float | None:
            values = [getattr(r, key) for r in self.rows if getattr(r, key) is not None]
            return float(of(values)) if values else None

        out = {f"tokcompress_{k}": stat(k, statistics.fmean) for k in (
            "visual_tokens_before", "visual_tokens_after", "flops_ratio", "prefill_ms", "select_ms", "input_tokens")}
        for key in ("prefill_ms", "select_ms"):  # a first call's warm-up or a busy moment skews the mean of a time
            out[f"tokcompress_{key}_median"] = stat(key, statistics.median)
        out["tokcompress_samples"] = float(len(self.rows))
        return {k: v for k, v in out.items() if v is not None}

    def publish(self) -> dict[str, float]:
        """Log the means with lmms-eval's `log_metrics` (they reach ``results["throughput"]`` as ``avg_<key>``)."""
        from lmms_eval.models.model_utils.gen_metrics import log_metrics

        summary = self.summary()
        tokens = int(sum(r.output_tokens or 0 for r in self.rows))
        log_metrics(total_elapsed_time=self.seconds, total_gen_tokens=tokens,
                    avg_speed=tokens / self.seconds if self.seconds > 0 else 0.0, additional_metrics=summary)
        return summary

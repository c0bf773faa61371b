"""`PruneStats`: what the last pruned prefill did, per sample, and what it saved."""

from __future__ import annotations

from dataclasses import dataclass

from ..flops import flops

__all__ = ["PruneStats", "make_stats"]


@dataclass(frozen=True)
class PruneStats:
    """One pruned prefill (``handle.stats`` after a forward or ``generate``)."""

    placement: str
    layer: int
    """Pruning layer K (0 for pre-LLM and vision placements)."""
    visual_before: tuple[int, ...]
    """Visual tokens per sample before pruning."""
    visual_after: tuple[int, ...]
    """Visual tokens per sample after pruning."""
    text: tuple[int, ...]
    """Non-visual, non-padding tokens per sample."""
    flops_unpruned: float
    flops_pruned: float
    """Decoder prefill FLOPs summed over the batch (FastV formula, `tokcompress.flops`)."""
    select_seconds: float
    """Wall time spent building the pruner input and selecting (all rows)."""
    skipped: bool = False
    """The budget kept every visual token, so the prefill ran unpruned (no probe, no gathering)."""

    @property
    def flops_ratio(self) -> float:
        """pruned / unpruned decoder FLOPs."""
        return self.flops_pruned / self.flops_unpruned

    @property
    def flops_reduction(self) -> float:
        return 1.0 - self.flops_ratio

    def as_dict(self) -> dict:
        return {
            "placement": self.placement, "layer": self.layer, "visual_before": list(self.visual_before),
            "visual_after": list(self.visual_after), "text": list(self.text), "flops_ratio": self.flops_ratio,
            "flops_reduction": self.flops_reduction, "select_seconds": self.select_seconds, "skipped": self.skipped,
        }


def make_stats(config, placement: str, layer: int, before: list[int], after: list[int], text: list[int],
               seconds: float, skipped: bool = False) -> PruneStats:
    """Stats for a batch; FLOPs from the decoder config of `config`."""
    unpruned = pruned = 0.0
    for n_vis, k, n_text in zip(before, after, text):
        est = flops(config, n_text, n_vis, k, layer)
        unpruned += est.unpruned
        pruned += est.pruned
    return PruneStats(placement, layer, tuple(before), tuple(after), tuple(text), unpruned, pruned, seconds, skipped)

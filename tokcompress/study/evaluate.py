"""`ModelWorker`: evaluates a suite's rows for one model (loaded once) in the current process.

Per sample, the unpruned reference runs once (prefill for the next-token distribution and its
timing, then greedy generation); each pruned variant runs the same two steps inside
`tokcompress.attach`, and the suite's metrics compare the two `Outcome`s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..timing import time_paired
from .datasets import Sample
from .integration import PruneStats, pruning
from .metrics import Metric, Outcome
from .models import LoadedModel, load_model
from .plan import Variant
from .provenance import environment

if TYPE_CHECKING:
    from .runner import WorkerConfig

__all__ = ["ModelWorker", "build_metrics"]


def build_metrics(config: list[dict[str, Any]]) -> list[Metric]:
    """Metric instances from the suite's ``[{name, ...params}]`` (looked up in this process's catalog)."""
    from .registry import get_study_catalog

    catalog = get_study_catalog()
    out = []
    for entry in config:
        params = {k: v for k, v in entry.items() if k != "name"}
        cls = catalog.metrics[entry["name"]].cls
        out.append(cls(cls.Params.model_validate(params)))
    return out


class ModelWorker:
    """Loads the model of `config` and evaluates one (sample, variant) row at a time."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.metrics = build_metrics(config.metrics)
        self._threads = torch.get_num_threads()
        if config.model.threads is not None:
            torch.set_num_threads(config.model.threads)
        self.loaded: LoadedModel = load_model(config.model)
        self._reference: tuple[str, Outcome] | None = None
        self._warm = config.timing.warmup == 0

    def environment(self) -> dict[str, Any]:
        return environment()

    def close(self) -> None:
        self.loaded = None  # type: ignore[assignment]
        self._reference = None
        torch.set_num_threads(self._threads)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- rows --------------------------------------------------------------------------------
    def evaluate(self, sample: Sample, variant: Variant) -> dict[str, Any]:
        reference = self.reference(sample)
        run = reference if variant.is_reference else self.run(sample, variant)
        metrics = {m.name: m(run, reference, sample) for m in self.metrics}
        output = {
            "text": run.text,
            "tokens": list(run.tokens),
            "visual_before": run.visual_before,
            "visual_after": run.visual_after,
            "flops_ratio": run.flops_ratio,
            "prefill_ms": run.prefill_s * 1e3,
            "select_ms": run.select_s * 1e3,
        }
        return {"metrics": metrics, "output": output}

    def reference(self, sample: Sample) -> Outcome:
        """The unpruned outcome of `sample` (computed once per sample, reused by every variant)."""
        if self._reference is None or self._reference[0] != sample.id:
            inputs = self.loaded.prepare(sample)
            if not self._warm:
                for _ in range(self.config.timing.warmup):
                    self._prefill(inputs)
                self._warm = True
            prefill_s, logprobs = self._timed_prefill(inputs)
            tokens = self._generate(inputs)
            n = self._visual_count(inputs)
            outcome = Outcome(logprobs, tokens, self.loaded.decode(list(tokens)), prefill_s, n, n, 1.0, 0.0)
            self._reference = (sample.id, outcome)
        return self._reference[1]

    def run(self, sample: Sample, variant: Variant) -> Outcome:
        """The pruned outcome; its prefill is timed in rounds paired with the unpruned prefill."""
        from ..pruner import build_pruner

        inputs = self.loaded.prepare(sample)
        torch.manual_seed(variant.seed)
        pruner = build_pruner(variant.spec)
        with pruning(self.loaded.model, pruner, variant.budget_kwargs) as handle:
            logprobs = self._prefill(inputs)
            stats = PruneStats.read(handle)
            tokens = self._generate(inputs)
        forward = lambda: self._prefill(inputs)  # noqa: E731
        timing = time_paired({"unpruned": forward, "pruned": forward}, "unpruned", rounds=self.config.timing.repeats,
                             warmup=0, around={"pruned": lambda: pruning(self.loaded.model, pruner, variant.budget_kwargs)})
        return Outcome(logprobs, tokens, self.loaded.decode(list(tokens)), timing.median_ms("pruned") / 1e3,
                       stats.visual_before, stats.visual_after, stats.flops_ratio, stats.select_s,
                       timing.speedup("pruned").median)

    # -- model calls -------------------------------------------------------------------------
    def _visual_count(self, inputs: dict[str, torch.Tensor]) -> int:
        cfg = self.loaded.model.config
        image_id = getattr(cfg, "image_token_id", None)
        image_id = image_id if image_id is not None else cfg.image_token_index
        return int((inputs["input_ids"][0] == image_id).sum())

    @torch.inference_mode()
    def _prefill(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.loaded.model(**inputs, use_cache=True, logits_to_keep=1)
        return torch.log_softmax(out.logits[0, -1].float(), dim=-1).cpu()

    def _timed_prefill(self, inputs: dict[str, torch.Tensor]) -> tuple[float, torch.Tensor]:
        logprobs = self._prefill(inputs)
        timing = time_paired({"unpruned": lambda: self._prefill(inputs)}, "unpruned", rounds=self.config.timing.repeats,
                             warmup=0)
        return timing.median_ms("unpruned") / 1e3, logprobs

    @torch.inference_mode()
    def _generate(self, inputs: dict[str, torch.Tensor]) -> tuple[int, ...]:
        loaded = self.loaded
        out = loaded.model.generate(
            **inputs,
            max_new_tokens=self.config.generation.max_new_tokens,
            do_sample=False,
            pad_token_id=loaded.pad_id,
            eos_token_id=sorted(loaded.eos_ids) or None,
        )
        new = out[0, inputs["input_ids"].shape[1]:].tolist()
        for i, tok in enumerate(new):
            if tok in loaded.eos_ids:
                return tuple(new[:i])
        return tuple(new)

"""The cross product of a suite: every (model, sample, spec x placement, budget, seed) row and its key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..spec import spec_hash
from .datasets import Sample
from .db import RowKey
from .suite import Budget, LoadedSuite, ModelEntry, apply_overrides, stable_hash

__all__ = ["UNPRUNED", "Variant", "Task", "Plan", "build_plan"]

UNPRUNED = "unpruned"


@dataclass(frozen=True)
class Variant:
    """One pruned configuration a model runs on a sample (or the unpruned reference: ``spec is None``)."""

    label: str
    spec: dict[str, Any] | None  # the spec that runs, overrides applied (JSON form)
    spec_hash: str
    budget: str  # "keep=8", "ratio=0.25", or "all"
    budget_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    @property
    def is_reference(self) -> bool:
        return self.spec is None


@dataclass(frozen=True)
class Task:
    """One row to compute."""

    key: RowKey
    model: ModelEntry
    sample: Sample
    variant: Variant


@dataclass
class Plan:
    suite: LoadedSuite
    samples: list[Sample]
    variants: list[Variant]
    tasks: list[Task]

    @property
    def dataset(self) -> str:
        return self.suite.dataset.label()


def variants_of(loaded: LoadedSuite) -> list[Variant]:
    """Specs x placements x budgets x seeds, in suite order; the unpruned reference first when requested."""
    suite = loaded.suite
    out: list[Variant] = []
    if suite.include_unpruned:
        out.append(Variant(UNPRUNED, None, UNPRUNED, "all", {}, suite.seeds[0]))
    for label, spec in loaded.specs:
        for placement in suite.placements or [None]:
            for budget in suite.budgets:
                for seed in suite.seeds:
                    effective = apply_overrides(spec, placement, seed)
                    out.append(
                        Variant(
                            label + (placement.suffix if placement else ""),
                            effective.to_dict(),
                            spec_hash(effective),
                            budget.label,
                            budget.kwargs(),
                            seed,
                        )
                    )
    return out


def config_hash(loaded: LoadedSuite, model: ModelEntry, sample: Sample) -> str:
    """Hash of what else changes a row's values: model options, generation, metric settings, the sample."""
    suite = loaded.suite
    return stable_hash(
        {
            "model": model.model_dump(mode="json", exclude={"label", "gpus", "threads"}),
            "generation": suite.generation.model_dump(mode="json"),
            "metrics": suite.metric_config(),
            "sample": {"prompt": sample.prompt, "image": sample.image.name, "answer": sample.answer, "box": sample.box},
        }
    )


def build_plan(loaded: LoadedSuite, samples: list[Sample] | None = None) -> Plan:
    """Every row of the suite, ordered model-major then sample, so each worker loads its model once."""
    suite = loaded.suite
    samples = samples if samples is not None else loaded.dataset.load(suite.base_dir)
    _check_labels(loaded, samples)
    variants = variants_of(loaded)
    dataset = loaded.dataset.label()
    tasks = []
    for model in suite.models:
        for sample in samples:
            chash = config_hash(loaded, model, sample)
            for v in variants:
                key = RowKey(model.name, dataset, sample.id, v.spec_hash, v.budget, v.seed, chash)
                tasks.append(Task(key, model, sample, v))
    return Plan(loaded, samples, variants, tasks)


def _check_labels(loaded: LoadedSuite, samples: list[Sample]) -> None:
    """A labelled metric on a dataset where no sample carries the label is a suite mistake, not a null column."""
    from .suite import SuiteError

    for metric in loaded.metrics:
        for label in sorted(metric.labels):
            if not any(s.has(label) for s in samples):
                raise SuiteError(
                    f"suite {loaded.origin}: metric {metric.name!r} needs the sample label {label!r}, "
                    f"but no sample of dataset {loaded.dataset.label()!r} has one"
                )


def budget_of(label: str) -> Budget | None:
    """Inverse of `Budget.label` (None for the reference's ``all``)."""
    if label == "all":
        return None
    kind, _, value = label.partition("=")
    return Budget(keep=int(value)) if kind == "keep" else Budget(ratio=float(value))

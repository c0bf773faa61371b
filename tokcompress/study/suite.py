"""Ablation suites: a declarative YAML naming models, a dataset, pruner specs, budgets and metrics.

    name: smoke
    models: [tiny-llava]                    # or {source: /ckpt/llava-1.5-7b-hf, dtype: float16}
    dataset: samples                        # or data.jsonl, or {name: jsonl, path: data.jsonl, limit: 100}
    specs: [fastv, random, {label: fastv-k3, spec: {extends: fastv, layer: 3}}]
    budgets: [4, 8, 0.5]                    # int = keep count, float = ratio of the visual tokens
    placements: [{placement: layer, layer: 2}, {placement: pre_llm}]   # optional: override each spec's apply
    metrics: [first_token_agreement, kl_next_token, {name: grounding_acc, coordinates: thousand}]
    seeds: [0, 1]                           # override every stage parameter called `seed`

Everything is checked when the suite loads, so a typo fails before any model is loaded; errors
name the file and the field (``specs.2``, ``budgets.0``...).
"""

from __future__ import annotations

import hashlib
import json
import numbers
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..budget import Budget
from ..component import Seed, StrictNumbers, is_bool
from ..documents import read_document
from ..errors import TokcompressError, shorten, unknown_name
from ..spec import SPEC_SUFFIXES, PrunerSpec, load_spec

__all__ = ["Budget", "ModelEntry", "Placement", "Suite", "SuiteError", "load_suite", "stable_hash"]


class SuiteError(TokcompressError, ValueError):
    """A suite file does not validate."""


def stable_hash(obj: Any) -> str:
    """16 hex digits of the SHA-256 of canonical JSON (sorted keys): equal content, equal hash."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class _Strict(StrictNumbers):  # numbers strict as in component Params: `true` is not 1
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelEntry(_Strict):
    """A model to evaluate. A bare string is shorthand for ``{source: STRING}``."""

    source: str = Field(min_length=1)
    """``tiny-<family>`` (random model built in code, e.g. ``tiny-llava``) or a checkpoint folder / hub id."""
    label: Optional[str] = None
    """Name recorded in the results; default: the source's last path component."""
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    device: str = "auto"
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:1``..."""
    attn_implementation: Optional[str] = "sdpa"
    """Passed to ``from_pretrained``; the integration computes the attention it needs without eager."""
    seed: Seed = 0
    """Seed of the random weights of ``tiny-*`` models (ignored for checkpoints)."""
    gpus: float = Field(0, ge=0)
    """GPUs a Ray worker reserves for this model (``--backend ray``); 0 = CPU only."""
    threads: Optional[int] = Field(None, ge=1)
    """torch CPU threads while this model runs (default: torch's own). Tiny models run fastest with 1."""
    tiny: dict[str, Any] = {}
    """Size options of ``tiny-*`` models (`tokcompress.hf.tiny.tiny_config`: text_layers, text_hidden, image_size...)."""

    @model_validator(mode="after")
    def _tiny_options_only_for_tiny(self) -> "ModelEntry":
        if self.tiny and not self.source.startswith("tiny-"):
            raise ValueError(f"'tiny' options apply to tiny-* models only, not {shorten(self.source)}")
        from .models import tiny_family

        try:
            tiny_family(self.source)  # an unknown tiny family is a suite error, caught before anything loads
        except TokcompressError as exc:
            raise ValueError(str(exc)) from None
        if self.tiny:
            import inspect

            from ..hf.tiny import tiny_config

            known = [p for p in inspect.signature(tiny_config).parameters if p != "family"]
            for key, value in self.tiny.items():
                if key not in known:
                    raise ValueError(f"'tiny': " + unknown_name("option", key, known))
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"'tiny': option {key!r} must be an int >= 1, got {value!r}")
        return self

    @field_validator("device")
    @classmethod
    def _device_exists(cls, device: str) -> str:
        """The device must exist on this machine: a suite fails at load, not at its first row."""
        from .models import resolve_device

        resolve_device(device)
        return device

    @property
    def name(self) -> str:
        return self.label or self.source.rstrip("/").split("/")[-1]


class Placement(BaseModel):
    """An ``apply`` override (``{placement: layer, layer: 3}``, ``{placement: pre_llm}``): each spec runs
    once per entry, with the entry merged into its own ``apply`` block as ``extends`` merges it."""

    model_config = ConfigDict(extra="allow", frozen=True)
    placement: str

    def block(self) -> dict[str, Any]:
        return {"placement": self.placement, **(self.model_extra or {})}

    @property
    def suffix(self) -> str:
        extra = "".join(str(v) for k, v in sorted((self.model_extra or {}).items()) if k == "layer")
        others = ",".join(f"{k}={v}" for k, v in sorted((self.model_extra or {}).items()) if k != "layer")
        return f"@{self.placement}{extra}" + (f"[{others}]" if others else "")


class SpecEntry(_Strict):
    """A pruner spec: a preset name, a spec file (relative to the suite) or an inline mapping."""

    spec: Union[str, dict[str, Any]]
    label: Optional[str] = None
    """Name of the spec in tables and plots; default: the preset name, file stem or the spec's ``name``."""


class MetricEntry(BaseModel):
    """``{name: METRIC, ...params}``; a bare string is shorthand."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DatasetEntry(BaseModel):
    """``{name: LOADER, ...params}``; a bare loader name or a ``.jsonl`` path are shorthands."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Generation(_Strict):
    max_new_tokens: int = Field(8, ge=1)
    """Greedy tokens generated per run (sequence agreement, exact match, grounding)."""


class Timing(_Strict):
    repeats: int = Field(1, ge=1)
    """Prefill is timed this many times per row; the median is recorded."""
    warmup: int = Field(1, ge=0)
    """Untimed unpruned forward passes per model before the first row (allocator, kernels)."""


class Suite(_Strict):
    """The validated suite. Relative paths resolve against `base_dir` (the suite file's folder)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    """Also the default run folder: ``runs/<name>/``."""
    description: str = ""
    models: list[ModelEntry] = Field(min_length=1)
    dataset: DatasetEntry
    specs: list[SpecEntry] = Field(min_length=1)
    budgets: list[Budget] = Field(min_length=1)
    placements: Optional[list[Placement]] = Field(None, min_length=1)
    metrics: Optional[list[MetricEntry]] = Field(None, min_length=1)
    """Default: the label-free set (`tokcompress.study.metrics.DEFAULT_METRICS`)."""
    seeds: list[Seed] = Field([0], min_length=1)
    include_unpruned: bool = True
    """Also record the unpruned model as spec ``unpruned`` (the reference line in plots)."""
    generation: Generation = Generation()
    timing: Timing = Timing()
    base_dir: Path = Path(".")

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("models"), list):
            data["models"] = [{"source": m} if isinstance(m, str) else m for m in data["models"]]
        if isinstance(data.get("specs"), list):
            data["specs"] = [{"spec": s} if isinstance(s, str) else _spec_entry(s) for s in data["specs"]]
        if isinstance(data.get("metrics"), list):
            data["metrics"] = [{"name": m} if isinstance(m, str) else m for m in data["metrics"]]
        ds = data.get("dataset")
        if isinstance(ds, str):
            data["dataset"] = {"name": "jsonl", "path": ds} if ds.endswith(".jsonl") else {"name": ds}
        return data

    @field_validator("models")
    @classmethod
    def _unique_models(cls, v: list[ModelEntry]) -> list[ModelEntry]:
        _no_duplicates([m.name for m in v], "model label")
        return v

    @field_validator("budgets")
    @classmethod
    def _unique_budgets(cls, v: list[Budget]) -> list[Budget]:
        _no_duplicates([b.label for b in v], "budget")
        return v

    @field_validator("metrics")
    @classmethod
    def _unique_metrics(cls, v: list[MetricEntry] | None) -> list[MetricEntry] | None:
        if v is not None:  # one column per metric name; two parameterisations need a plugin subclass with its own name
            _no_duplicates([m.name for m in v], "metric")
        return v

    @field_validator("seeds", "placements")
    @classmethod
    def _unique(cls, v: list | None) -> list | None:
        if v is not None:
            _no_duplicates([x if isinstance(x, int) else x.suffix for x in v], "entry")
        return v

    # -- derived -------------------------------------------------------------------------
    def metric_names(self) -> list[str]:
        from .metrics import DEFAULT_METRICS

        return [m.name for m in self.metrics] if self.metrics else list(DEFAULT_METRICS)

    def metric_config(self) -> list[dict[str, Any]]:
        from .metrics import DEFAULT_METRICS

        entries = self.metrics or [MetricEntry(name=n) for n in DEFAULT_METRICS]
        return [{"name": m.name, **m.params()} for m in entries]


def _spec_entry(value: Any) -> Any:
    """An inline spec mapping without ``spec:``/``label:`` keys is shorthand for ``{spec: MAPPING}``."""
    if isinstance(value, dict) and "spec" not in value:
        return {"spec": value}
    return value


def _no_duplicates(items: list[Any], what: str) -> None:
    seen = set()
    for i, item in enumerate(items):
        if item in seen:
            raise ValueError(f"duplicate {what} {shorten(item)} at position {i}")
        seen.add(item)


# -- loading ------------------------------------------------------------------------------------------


def load_suite(source: "str | Path | dict[str, Any]", base_dir: Path | None = None) -> "LoadedSuite":
    """Read, validate and resolve a suite: every spec, metric and dataset name is checked here.

    `source` is a suite file path, the name of a shipped suite (``registry/suites/NAME.yaml``), or a mapping.
    """
    data, origin, folder = _read_suite(source)
    base = Path(base_dir) if base_dir is not None else folder
    if not isinstance(data, dict):
        raise SuiteError(f"suite {origin} must hold a mapping of fields, got {type(data).__name__}")
    if "base_dir" in data:
        raise SuiteError(f"invalid suite {origin}:\n  field 'base_dir': set by the loader (the suite's folder), not in the file")
    try:
        suite = Suite.model_validate({**data, "base_dir": base})
    except ValidationError as exc:
        raise _explain(exc, origin) from None
    return LoadedSuite.resolve(suite, origin)


def _read_suite(source: "str | Path | dict[str, Any]") -> tuple[Any, str, Path]:
    if isinstance(source, dict):
        return dict(source), "<mapping>", Path.cwd()
    path = Path(source)
    if not path.exists() and path.suffix not in (".yaml", ".yml"):
        shipped = _shipped_suites()
        if str(source) not in shipped:
            raise SuiteError(unknown_name("suite (and no such file)", str(source), shipped))
        path = shipped[str(source)]
    data = read_document(path, "suite file", error=SuiteError)
    return data, str(path), path.resolve().parent


def _shipped_suites() -> dict[str, Path]:
    from ..catalog import get_catalog

    return {name: entry.path for name, entry in get_catalog().entries("suite").items()}


def _explain(exc: ValidationError, origin: str) -> SuiteError:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "tagged-union"))]
        where = f"field {'.'.join(loc)!r}" if loc else "suite"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and loc:
            fields = _fields_at(loc[:-1])
            msg = unknown_name("field", loc[-1], fields) if fields else msg
        elif err["type"] not in ("missing", "value_error") and "input" in err and not isinstance(err["input"], dict):
            msg += f" (got {shorten(err['input'])})"
        lines.append(f"  {where}: {msg}")
    return SuiteError(f"invalid suite {origin}:\n" + "\n".join(dict.fromkeys(lines)))


def _fields_at(loc: list[str]) -> list[str]:
    """Field names allowed at a location, for "did you mean" hints."""
    models = {"": Suite, "models": ModelEntry, "specs": SpecEntry, "budgets": Budget, "placements": Placement,
              "generation": Generation, "timing": Timing}
    model = models.get(".".join(p for p in loc if not p.isdigit()))
    return [f for f in model.model_fields if f != "base_dir"] if model else []


class LoadedSuite:
    """A validated suite with everything resolved: specs loaded, metrics and the dataset loader built."""

    def __init__(self, suite: Suite, origin: str, specs: list[tuple[str, PrunerSpec]], metrics: list, dataset) -> None:
        self.suite = suite
        self.origin = origin
        self.specs = specs  # (label, spec) in suite order, before placement/seed overrides
        self.metrics = metrics  # Metric instances
        self.dataset = dataset  # Dataset instance

    @property
    def name(self) -> str:
        return self.suite.name

    @classmethod
    def resolve(cls, suite: Suite, origin: str) -> "LoadedSuite":
        from .registry import get_study_catalog

        catalog = get_study_catalog()
        problems: list[str] = []
        specs: list[tuple[str, PrunerSpec]] = []
        for i, entry in enumerate(suite.specs):
            try:
                specs.append(_load_entry(entry, suite.base_dir))
            except TokcompressError as exc:
                problems.append(f"  field 'specs.{i}': {_indent(str(exc))}")
        labels = [label for label, _ in specs]
        for label in {x for x in labels if labels.count(x) > 1}:
            problems.append(f"  field 'specs': two specs are labelled {shorten(label)}; give one a 'label'")
        if "unpruned" in labels and suite.include_unpruned:
            problems.append("  field 'specs': the label 'unpruned' is reserved for the reference rows")
        metrics = []
        for i, entry in enumerate(suite.metrics or []):
            problems += _build(catalog.metrics, "metric", f"metrics.{i}", entry, metrics)
        if suite.metrics is None:
            from .metrics import DEFAULT_METRICS

            metrics = [catalog.metrics[n].cls() for n in DEFAULT_METRICS]
        datasets: list = []
        problems += _build(catalog.datasets, "dataset", "dataset", suite.dataset, datasets)
        if problems:
            raise SuiteError(f"invalid suite {origin}:\n" + "\n".join(problems))
        loaded = cls(suite, origin, specs, metrics, datasets[0])
        loaded._check_variants()
        return loaded

    def _check_variants(self) -> None:
        """Build every (spec, placement, seed) pruner once, so composition errors surface before any model loads."""
        from ..pruner import build_pruner

        problems = []
        for label, spec in self.specs:
            for placement in self.suite.placements or [None]:
                for seed in self.suite.seeds:
                    try:
                        build_pruner(apply_overrides(spec, placement, seed))
                    except TokcompressError as exc:
                        where = label + (placement.suffix if placement else "")
                        problems.append(f"  spec {where!r}, seed {seed}: {_indent(str(exc))}")
        if problems:
            raise SuiteError(f"invalid suite {self.origin}:\n" + "\n".join(dict.fromkeys(problems)))


def _build(entries: dict, kind: str, where: str, entry: MetricEntry | DatasetEntry, out: list) -> list[str]:
    known = entries.get(entry.name)
    if known is None:
        return [f"  field {where + '.name'!r}: " + unknown_name(kind, entry.name, entries)]
    try:
        out.append(known.cls(known.cls.Params.model_validate(entry.params())))
    except ValidationError as exc:
        return [
            f"  field {where + '.' + '.'.join(str(p) for p in e['loc'])!r}: {e['msg']}"
            + (f" (got {shorten(e['input'])}; {kind} {entry.name!r})" if e["type"] != "extra_forbidden" else
               f"; {kind} {entry.name!r} takes: {', '.join(known.cls.Params.model_fields) or '(no parameters)'}")
            for e in exc.errors()
        ]
    return []


def _indent(text: str) -> str:
    return text.replace("\n", "\n    ")


def _load_entry(entry: SpecEntry, base_dir: Path) -> tuple[str, PrunerSpec]:
    source = entry.spec
    if isinstance(source, dict):
        spec = load_spec(source)
        default = spec.name or source.get("extends")
    else:
        path = Path(source) if Path(source).is_absolute() else base_dir / source
        if path.suffix in SPEC_SUFFIXES or path.exists():
            spec, default = load_spec(path), path.stem
        else:
            spec, default = load_spec(source), source
    label = entry.label or default
    if not label:
        raise SuiteError("an inline spec needs a 'label' (or a 'name' inside the spec)")
    return label, spec


def apply_overrides(spec: PrunerSpec, placement: Placement | None, seed: int | None) -> PrunerSpec:
    """The spec with the suite's ``apply`` override and seed applied, re-validated.

    The placement entry is merged into the spec's ``apply`` (same placement: key by key; another:
    replaced). The seed replaces the value of every stage parameter named ``seed`` (e.g. the ``random``
    selector); stages without one are unaffected.
    """
    data = spec.to_dict()
    if placement is not None:
        block = placement.block()
        data["apply"] = {**data["apply"], **block} if block["placement"] == spec.placement else block
    if seed is not None:
        for field, block in spec.stages().items():
            if "seed" in type(block).model_fields:
                data[field] = {**data[field], "seed": seed}
    return load_spec(data)

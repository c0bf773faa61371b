"""Declarative pruner specs: one flat block per stage, chosen by ``name``, validated in one pass.

A spec is YAML/JSON (loaded safely: no object construction, never an import path)::

    name: fastv
    placement: layer        # vision | pre_llm | layer
    layer: 2                # pruning layer K (placement: layer)
    scorer: {name: attention}
    selector: topk          # shorthand for {name: topk}

``extends: PRESET`` starts from another preset; a stage block with the same component name is
merged key by key, a different name replaces the block, and ``null`` removes the stage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Mapping, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from .errors import SpecError, unknown_name

if TYPE_CHECKING:
    from .catalog import Catalog

__all__ = ["PrunerSpec", "load_spec", "make_spec_model", "spec_hash"]

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
STAGE_FIELDS = ("scorer", "debiaser", "graph", "selector", "merger")


class PrunerSpec(BaseModel):
    """Base of the spec model; the real class adds one discriminated union per stage (`make_spec_model`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Optional[str] = None
    description: str = ""
    placement: Literal["vision", "pre_llm", "layer"] = "layer"
    """Where the integration applies the pruner: vision tower output, decoder input, or layer K's input."""
    layer: int = Field(2, ge=1)
    """Pruning layer K for ``placement: layer``: layers < K see every token."""
    features: Literal["hidden", "normed"] = "hidden"
    """What the integration hands over as ``VisualTokens.features``/``text_features``: ``hidden``
    (hidden states entering layer K, or projector outputs pre-LLM) or ``normed`` (the same through
    the decoder's final norm, as DART uses them)."""
    positions: Literal["original", "contiguous"] = "original"
    """RoPE positions of the kept tokens: ``original`` (FastV, DART, D2Pruner: pruned tokens leave a
    gap) or ``contiguous`` (renumbered, as the DivPrune and CDPruner reference code does)."""

    def stages(self) -> dict[str, Any]:
        """The stage blocks that are present, by stage field."""
        return {f: getattr(self, f) for f in STAGE_FIELDS if getattr(self, f, None) is not None}

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def make_spec_model(catalog: "Catalog") -> type[PrunerSpec]:
    """`PrunerSpec` subclass whose stage fields are unions of the registered components' `Params`."""
    fields: dict[str, Any] = {}
    for field in STAGE_FIELDS:
        blocks = [
            create_model(
                f"{field}:{entry.name}",
                __base__=entry.cls.Params,
                __doc__=(entry.cls.__doc__ or "").strip() or None,
                name=(Literal[entry.name], ...),
            )
            for entry in catalog.components[field].values()
        ]
        if not blocks:
            annotation: Any = None
        elif len(blocks) == 1:
            annotation = blocks[0]
        else:
            annotation = Annotated[Union[tuple(blocks)], Field(discriminator="name")]
        required = field == "selector"
        fields[field] = (annotation, ...) if required else (Optional[annotation], None)
    return create_model("PrunerSpec", __base__=PrunerSpec, **fields)


def _read(path: Path) -> dict[str, Any]:
    from .documents import read_document  # safe, bounded, duplicate keys refused (docs/reliability.md)

    data = read_document(path, "spec file", error=SpecError)
    if not isinstance(data, dict):
        raise SpecError(f"spec file {path} must hold a mapping of fields, got {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in child.items():
        old = out.get(key)
        if key in STAGE_FIELDS and isinstance(old, dict) and isinstance(value, dict):
            if value.get("name", old.get("name")) == old.get("name"):
                value = {**old, **value}
        out[key] = value
    return out


def _resolve(data: dict[str, Any], origin: str, catalog: "Catalog", seen: tuple[str, ...]) -> dict[str, Any]:
    parent = data.get("extends")
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise SpecError(f"spec {origin}: 'extends' must be a preset name, got {parent!r}")
    if parent in seen:
        raise SpecError(f"spec {origin}: 'extends' cycle: {' -> '.join((*seen, parent))}")
    preset = catalog.preset(parent)
    base = _resolve(_read(preset.path), str(preset.path), catalog, (*seen, parent))
    merged = _merge(base, {k: v for k, v in data.items() if k != "extends"})
    if "name" not in data:
        merged.pop("name", None)
    return merged


def _normalise_stages(data: dict[str, Any], origin: str, catalog: "Catalog") -> dict[str, Any]:
    """Expand ``stage: NAME`` shorthands and check every component name before pydantic runs."""
    out = dict(data)
    for field in STAGE_FIELDS:
        block = out.get(field)
        if block is None:
            continue
        if isinstance(block, str):
            block = out[field] = {"name": block}
        available = catalog.components[field]
        if not isinstance(block, dict):
            raise SpecError(f"spec {origin}: stage {field!r} must be a mapping with a 'name', got {block!r}")
        if "name" not in block:
            raise SpecError(
                f"spec {origin}: stage {field!r} has no 'name'; available {field}s: {', '.join(sorted(available))}"
            )
        if block["name"] not in available:
            raise SpecError(f"spec {origin}: stage {field!r}: " + unknown_name(field, block["name"], available))
    return out


def _explain(exc: ValidationError, origin: str, spec_model: type[PrunerSpec]) -> SpecError:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] in STAGE_FIELDS and len(loc) > 1:
            where = f"{loc[0]} {loc[1]!r}" + (f", field {'.'.join(loc[2:])!r}" if len(loc) > 2 else "")
        else:
            where = f"field {'.'.join(loc)!r}" if loc else "spec"
        msg = err["msg"]
        if err["type"] == "extra_forbidden" and len(loc) == 1:
            msg = unknown_name("field", loc[0], spec_model.model_fields)
        elif "input" in err and err["type"] != "missing":
            msg += f" (got {err['input']!r})"
        lines.append(f"  {where}: {msg}")
    return SpecError(f"invalid spec {origin}:\n" + "\n".join(lines))


def load_spec(source: "str | Path | Mapping[str, Any] | PrunerSpec", catalog: "Catalog | None" = None) -> PrunerSpec:
    """A validated spec from a preset name, a YAML/JSON file path, a mapping, or a spec (returned as is)."""
    from .catalog import get_catalog

    catalog = catalog or get_catalog()
    if isinstance(source, PrunerSpec):
        return source
    seen: tuple[str, ...] = ()
    if isinstance(source, Mapping):
        data, origin = dict(source), "<mapping>"
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if path.suffix in SPEC_SUFFIXES or path.exists():
            data, origin = _read(path), str(path)
        else:
            preset = catalog.preset(str(source))
            data, origin, seen = _read(preset.path), f"preset {preset.name!r} ({preset.path})", (preset.name,)
            data.setdefault("name", preset.name)
    else:
        raise SpecError(f"load_spec expects a preset name, a path or a mapping, got {type(source).__name__}")
    data = _normalise_stages(_resolve(data, origin, catalog, seen), origin, catalog)
    model = catalog.spec_model
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, origin, model) from None


def spec_hash(spec: PrunerSpec) -> str:
    """Stable short hash of what a spec does (name and description excluded); results are keyed by it."""
    import hashlib

    content = {k: v for k, v in spec.to_dict().items() if k not in ("name", "description")}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]

"""Declarative pruner specs: one flat block per stage, chosen by ``name``, and where to apply it.

A spec is YAML/JSON (loaded safely: no object construction, never an import path)::

    name: fastv
    apply: {placement: layer, layer: 2}   # where the integration runs it (see `tokcompress.placement`)
    scorer: {name: attention}
    selector: topk                        # shorthand for {name: topk}

``extends: PRESET`` starts from another preset; a stage block with the same component name (an
``apply`` block with the same placement) is merged key by key, a different one replaces the block,
and ``null`` removes a stage. Loading checks everything a spec alone decides: names, parameters,
stage composition and whether the placement can feed the stages, so ``tokcompress validate``
refuses what ``attach`` would, with the same message.
"""

from __future__ import annotations

import functools
import hashlib
import json
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Optional, Union

from pydantic import ConfigDict, Field, ValidationError, create_model

from .catalog import Catalog, get_catalog
from .component import StrictNumbers
from .composition import check_composition
from .errors import SpecError, shorten, unknown_name

__all__ = ["PrunerSpec", "load_spec", "spec_model", "spec_hash", "STAGE_FIELDS", "DEFAULT_APPLY", "LEGACY_APPLY_FIELDS"]

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
STAGE_FIELDS = ("scorer", "debiaser", "graph", "selector", "merger")
DEFAULT_APPLY: dict[str, Any] = {"placement": "layer", "layer": 2}
"""Where a spec that names no ``apply`` runs (FastV's setting: the input of decoder layer 2)."""
LEGACY_APPLY_FIELDS = ("placement", "layer", "features", "positions")
"""Former top-level spec fields, now inside ``apply`` (still read, with a deprecation warning)."""


class PrunerSpec(StrictNumbers):
    """Base of the spec model; the real class adds one discriminated union per stage and for ``apply``
    (`spec_model`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Optional[str] = None
    description: str = ""

    def stages(self) -> dict[str, Any]:
        """The stage blocks that are present, by stage field."""
        return {f: getattr(self, f) for f in STAGE_FIELDS if getattr(self, f, None) is not None}

    @property
    def placement(self) -> str:
        """Name of the placement in ``apply``."""
        return self.apply.placement  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def _union(blocks: list[type], discriminator: str) -> Any:
    if not blocks:
        return None
    if len(blocks) == 1:
        return blocks[0]
    return Annotated[Union[tuple(blocks)], Field(discriminator=discriminator)]


@functools.lru_cache(maxsize=4)
def spec_model(catalog: Catalog) -> type[PrunerSpec]:
    """`PrunerSpec` subclass whose stage fields are unions of the registered components' `Params`
    and whose ``apply`` is the union of the registered placements' `Params`."""
    fields: dict[str, Any] = {}
    for field in STAGE_FIELDS:
        blocks = [
            create_model(f"{field}:{e.name}", __base__=e.cls.Params, __doc__=(e.cls.__doc__ or "").strip() or None,
                         name=(Literal[e.name], ...))
            for e in catalog.components[field].values()
        ]
        annotation = _union(blocks, "name")
        fields[field] = (annotation, ...) if field == "selector" else (Optional[annotation], None)
    places = [
        create_model(f"apply:{e.name}", __base__=e.cls.Params, __doc__=(e.cls.__doc__ or "").strip() or None,
                     placement=(Literal[e.name], ...))
        for e in catalog.placements.values()
    ]
    fields["apply"] = (_union(places, "placement"), ...)
    return create_model("PrunerSpec", __base__=PrunerSpec, **fields)


# -- reading and merging ------------------------------------------------------------------------
def _read(path: Path) -> dict[str, Any]:
    from .documents import read_document  # safe, bounded, duplicate keys refused (docs/reliability.md)

    data = read_document(path, "spec file", error=SpecError)
    if not isinstance(data, dict):
        raise SpecError(f"spec file {path} must hold a mapping of fields, got {type(data).__name__}")
    return data


def _upgrade(data: dict[str, Any], origin: str) -> dict[str, Any]:
    """Move the legacy top-level placement fields into ``apply``, warning with the new form."""
    legacy = {k: data[k] for k in LEGACY_APPLY_FIELDS if k in data}
    if not legacy:
        return data
    out = {k: v for k, v in data.items() if k not in LEGACY_APPLY_FIELDS}
    if "apply" in data:
        raise SpecError(f"spec {origin}: fields {sorted(legacy)} belong inside 'apply', which is given too; "
                        f"move them into it")
    placement = legacy.get("placement", DEFAULT_APPLY["placement"])
    if placement != "layer":  # the old loader ignored these outside their placement
        legacy.pop("layer", None)
    if placement == "vision" and legacy.get("features") == "hidden":
        legacy.pop("features")
    out["apply"] = legacy
    new = ", ".join(f"{k}: {v}" for k, v in legacy.items())
    verb = "is" if len(legacy) == 1 else "are"
    warnings.warn(f"spec {origin}: top-level {', '.join(repr(k) for k in legacy)} {verb} deprecated; "
                  f"write `apply: {{{new}}}`", DeprecationWarning, stacklevel=4)
    return out


def _merge_block(old: Any, new: Any, key: str) -> Any:
    if isinstance(old, dict) and isinstance(new, dict) and new.get(key, old.get(key)) == old.get(key):
        return {**old, **new}
    return new


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in child.items():
        if key in STAGE_FIELDS:
            value = _merge_block(out.get(key), value, "name")
        elif key == "apply":
            value = _merge_block(out.get(key), value, "placement")
        out[key] = value
    return out


def _resolve(data: dict[str, Any], origin: str, catalog: Catalog, seen: tuple[str, ...],
             folder: Path | None = None) -> dict[str, Any]:
    """`data` with its ``extends`` chain merged in: a preset name, or a spec file (relative to `folder`,
    the folder of the spec that names it, else the working directory)."""
    data = _upgrade(data, origin)
    parent = data.get("extends")
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent:
        raise SpecError(f"spec {origin}: 'extends' takes a preset name or a spec file path (.yaml/.yml/.json), got {parent!r}")
    path = Path(parent) if Path(parent).is_absolute() or folder is None else folder / parent
    if Path(parent).suffix in SPEC_SUFFIXES:
        key, source = str(path.resolve()), path
    else:
        try:
            key, source = parent, catalog.preset(parent).path
        except SpecError:
            raise SpecError(f"spec {origin}: 'extends' takes a preset name or a spec file path (.yaml/.yml/.json); "
                            + unknown_name("preset", parent, catalog.presets)) from None
    if key in seen:
        raise SpecError(f"spec {origin}: 'extends' cycle: {' -> '.join((*seen, parent))}")
    base = _resolve(_read(source), str(source), catalog, (*seen, key), source.parent)
    merged = _merge(base, {k: v for k, v in data.items() if k != "extends"})
    if "name" not in data:
        merged.pop("name", None)
    return merged


def _normalise(data: dict[str, Any], origin: str, catalog: Catalog) -> dict[str, Any]:
    """Expand ``stage: NAME`` / ``apply: NAME`` shorthands and check every name before pydantic runs."""
    out = dict(data)
    apply = out.get("apply")
    if apply is None:
        apply = dict(DEFAULT_APPLY)
    if isinstance(apply, str):
        apply = {"placement": apply}
    if isinstance(apply, dict):
        apply = {"placement": DEFAULT_APPLY["placement"], **apply}
        if apply["placement"] not in catalog.placements:
            raise SpecError(f"spec {origin}: field 'apply.placement': "
                            + unknown_name("placement", apply["placement"], catalog.placements))
    out["apply"] = apply
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


def _explain(exc: ValidationError, origin: str, model: type[PrunerSpec]) -> SpecError:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] in (*STAGE_FIELDS, "apply") and len(loc) > 1:
            what = "apply" if loc[0] == "apply" else loc[0]
            where = f"{what} {loc[1]!r}" + (f", field {'.'.join(loc[2:])!r}" if len(loc) > 2 else "")
        else:
            where = f"field {'.'.join(loc)!r}" if loc else "spec"
        msg = shorten(err["msg"].removeprefix("Value error, "), 400, quote=False)
        if err["type"] == "extra_forbidden" and len(loc) == 1:
            msg = unknown_name("field", loc[0], model.model_fields)
        elif "input" in err and err["type"] not in ("missing", "value_error"):
            msg += f" (got {shorten(err['input'])})"
        lines.append(f"  {where}: {msg}")
    return SpecError(f"invalid spec {origin}:\n" + "\n".join(lines))


def check_spec(spec: PrunerSpec, catalog: Catalog, origin: str = "<spec>") -> None:
    """Composition and placement checks that need the stages themselves (built and thrown away)."""
    parts = {field: catalog.get(field, block.name).cls(block) for field, block in spec.stages().items()}
    try:
        check_composition(parts)
        placement = catalog.placements[spec.placement].cls(spec.apply)
        placement.check(parts, [e.cls for e in catalog.placements.values()])
    except SpecError as exc:
        raise SpecError(f"spec {origin}: {exc}") from None


def load_spec(source: "str | Path | Mapping[str, Any] | PrunerSpec", catalog: Catalog | None = None) -> PrunerSpec:
    """A validated spec from a preset name, a YAML/JSON file path, a mapping, or a spec (returned as is)."""
    catalog = catalog or get_catalog()
    if isinstance(source, PrunerSpec):
        return source
    seen: tuple[str, ...] = ()
    folder = None
    if isinstance(source, Mapping):
        data, origin = dict(source), "<mapping>"
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if path.suffix in SPEC_SUFFIXES or path.exists():
            data, origin, folder = _read(path), str(path), path.parent
        else:
            preset = catalog.preset(str(source))
            data, origin, seen = _read(preset.path), f"preset {preset.name!r} ({preset.path})", (preset.name,)
            data.setdefault("name", preset.name)
    else:
        raise SpecError(f"load_spec expects a preset name, a path or a mapping, got {type(source).__name__}")
    data = _normalise(_resolve(data, origin, catalog, seen, folder), origin, catalog)
    model = spec_model(catalog)
    try:
        spec = model.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, origin, model) from None
    check_spec(spec, catalog, origin)
    return spec


def spec_hash(spec: PrunerSpec) -> str:
    """Stable short hash of what a spec does (name and description excluded); results are keyed by it."""
    content = {k: v for k, v in spec.to_dict().items() if k not in ("name", "description")}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]

"""Positional-bias profiles: the mean attention each token position receives, per grid kind.

A profile named NAME is ``NAME.safetensors`` (one float32 ``[h, w]`` map per `Grid.kind`, plus an
optional 1-D ``"offgrid"`` vector for tokens with no grid position) and ``NAME.json`` (metadata:
model, layer, grids, calibration size, prompt, ...). No pickle anywhere: safetensors holds only
tensors and the JSON only plain values.

`Profile.map_for(grid)` places a map on a grid of another size by 2-D bilinear resampling
(``align_corners=False``, antialiased when shrinking), because resampling a row-major 1-D vector
would smear the bottom-row and periphery shapes the prior exists to capture.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from tokcompress.documents import read_document
from tokcompress.errors import SpecError, TokcompressError
from tokcompress.layout import Grid

__all__ = [
    "FORMAT",
    "OFFGRID_KEY",
    "METADATA_KEYS",
    "Profile",
    "ProfileError",
    "load_profile",
    "resample_map",
    "resample_vector",
    "save_profile",
]

FORMAT = "tokcompress.position_prior/1"
OFFGRID_KEY = "offgrid"
"""Key of the optional 1-D vector for off-grid tokens (newlines, separators)."""

METADATA_KEYS = (
    "format",
    "name",
    "description",
    "analytic",
    "model",
    "layer",
    "pruning_layer",
    "grids",
    "num_images",
    "prompt",
    "seed",
    "created",
    "tokcompress_version",
)


class ProfileError(TokcompressError, ValueError):
    """A positional-bias profile file is missing, malformed, or cannot be placed on a layout."""


def resample_map(bias_map: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """``[h, w]`` -> ``[rows, cols]`` fp32: bilinear, ``align_corners=False``, antialiased when shrinking.

    Same size returns a copy unchanged. Upsampling with antialias is plain bilinear; shrinking
    averages over the source footprint instead of sampling two taps (no aliasing of the prior).
    """
    m = bias_map.float()
    if tuple(m.shape) == (rows, cols):
        return m.clone()
    return F.interpolate(m[None, None], size=(rows, cols), mode="bilinear", align_corners=False, antialias=True)[0, 0]


def resample_vector(vector: torch.Tensor, count: int) -> torch.Tensor:
    """1-D ``[L]`` -> ``[count]`` by the same rule as `resample_map` applied to a ``[1, L]`` map."""
    return resample_map(vector.reshape(1, -1), 1, count).reshape(count)


@dataclass(frozen=True)
class Profile:
    """A loaded profile: ``maps[kind]`` is ``[h, w]`` fp32 (or 1-D for off-grid entries)."""

    name: str
    maps: Mapping[str, torch.Tensor]
    metadata: Mapping[str, Any]
    path: Path | None = None
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_maps(self.maps, f"profile {self.name!r}")
        _check_metadata(self.metadata, self.maps, f"profile {self.name!r}")

    @property
    def grid_kinds(self) -> tuple[str, ...]:
        """Kinds that have a 2-D map."""
        return tuple(sorted(k for k, v in self.maps.items() if v.dim() == 2))

    @property
    def analytic(self) -> bool:
        return bool(self.metadata["analytic"])

    def describe(self) -> str:
        grids = ", ".join(f"{k} {self.maps[k].shape[0]}x{self.maps[k].shape[1]}" for k in self.grid_kinds)
        return f"{self.name} ({'analytic' if self.analytic else 'measured'}; {grids})"

    def map_for(self, grid: Grid, kind: str | None = None) -> torch.Tensor:
        """The ``[grid.rows, grid.cols]`` prior for `grid`, from the map of `kind` (default: ``grid.kind``).

        Raises `ProfileError` naming the kinds this profile has when `kind` has no map.
        """
        kind = grid.kind if kind is None else kind
        key = (kind, grid.rows, grid.cols)
        if key not in self._cache:
            source = self.maps.get(kind)
            if source is None or source.dim() != 2:
                raise ProfileError(
                    f"profile {self.name!r} has no 2-D map for grid kind {kind!r} (has: "
                    f"{', '.join(self.grid_kinds) or 'none'}); pass a profile calibrated for this layout, "
                    f"or map the kind onto one of these"
                )
            if len(self._cache) >= 256:  # many grid sizes (dynamic resolution): drop the oldest
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = resample_map(source, grid.rows, grid.cols)
        return self._cache[key]

    def vector_for(self, kind: str, count: int) -> torch.Tensor | None:
        """``[count]`` values for `count` off-grid tokens from the 1-D entry `kind`, or None if absent."""
        source = self.maps.get(kind)
        if source is None or source.dim() != 1:
            return None
        return resample_vector(source, count)


# -- validation -------------------------------------------------------------------------
def _check_maps(maps: Mapping[str, torch.Tensor], where: str) -> None:
    if not isinstance(maps, Mapping) or not maps:
        raise ProfileError(f"{where}: maps must be a non-empty mapping kind -> tensor, got {maps!r}")
    has_grid = False
    for kind, m in maps.items():
        if not isinstance(kind, str) or not kind:
            raise ProfileError(f"{where}: map keys must be non-empty strings (grid kinds), got {kind!r}")
        if not isinstance(m, torch.Tensor) or not m.is_floating_point():
            got = m.dtype if isinstance(m, torch.Tensor) else type(m).__name__
            raise ProfileError(f"{where}: map {kind!r} must be a float tensor, got {got}")
        dims = (1,) if kind == OFFGRID_KEY else (1, 2)
        if m.dim() not in dims or m.numel() == 0:
            expected = "a non-empty 1-D vector"
            if kind != OFFGRID_KEY:
                expected = "a non-empty 2-D [h, w] map (or 1-D off-grid vector)"
            raise ProfileError(f"{where}: map {kind!r} has shape {tuple(m.shape)}; expected {expected}")
        if not bool(torch.isfinite(m).all()) or bool((m < 0).any()):
            raise ProfileError(
                f"{where}: map {kind!r} must hold finite, non-negative attention values "
                f"(min {float(m.min()):.3g}, max {float(m.max()):.3g})"
            )
        has_grid |= m.dim() == 2
    if not has_grid:
        raise ProfileError(f"{where}: needs at least one 2-D grid map, got only {sorted(maps)}")


def _check_metadata(meta: Mapping[str, Any], maps: Mapping[str, torch.Tensor], where: str) -> None:
    if not isinstance(meta, Mapping):
        raise ProfileError(f"{where}: metadata must be a mapping, got {type(meta).__name__}")
    missing = [k for k in METADATA_KEYS if k not in meta]
    if missing:
        raise ProfileError(f"{where}: metadata lacks {missing}; every profile records {list(METADATA_KEYS)}")
    if meta["format"] != FORMAT:
        raise ProfileError(f"{where}: metadata 'format' is {meta['format']!r}; expected {FORMAT!r}")
    if not isinstance(meta["analytic"], bool):
        raise ProfileError(f"{where}: metadata 'analytic' must be true or false, got {meta['analytic']!r}")
    for key, low in (("layer", 0), ("pruning_layer", 1)):
        value = meta[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ProfileError(f"{where}: metadata {key!r} must be an int >= {low} or null, got {value!r}")
    grids = meta["grids"]
    want = {k: [int(s) for s in m.shape] for k, m in maps.items() if m.dim() == 2}
    if not isinstance(grids, Mapping) or {k: list(v) for k, v in grids.items()} != want:
        raise ProfileError(f"{where}: metadata 'grids' is {grids!r} but the maps have shapes {want}")


# -- I/O --------------------------------------------------------------------------------
def _tensor_path(path: str | Path) -> Path:
    """``NAME`` or ``NAME.safetensors`` -> ``NAME.safetensors`` (names may contain dots: 'llava-1.5')."""
    p = Path(path)
    if p.suffix == ".json":
        p = p.with_suffix("")
    return p if p.suffix == ".safetensors" else Path(f"{p}.safetensors")


def save_profile(path: str | Path, maps: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]) -> Path:
    """Write ``NAME.safetensors`` and ``NAME.json``; return the safetensors path.

    Fills ``format``, ``name`` (file stem), ``grids`` (from the maps), ``created`` (UTC date) and
    ``tokcompress_version`` when absent; every other key of `METADATA_KEYS` must be given (use
    null for what does not apply, e.g. ``num_images`` of an analytic profile).
    """
    import tokcompress

    st_path = _tensor_path(path)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in maps.items()}
    meta = dict(metadata)
    meta.setdefault("format", FORMAT)
    meta.setdefault("name", st_path.stem)
    meta.setdefault("grids", {k: list(v.shape) for k, v in tensors.items() if v.dim() == 2})
    meta.setdefault("created", _dt.datetime.now(_dt.timezone.utc).date().isoformat())
    meta.setdefault("tokcompress_version", tokcompress.__version__)
    Profile(meta["name"], tensors, meta)  # validates both halves before anything is written
    try:
        text = json.dumps(meta, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise ProfileError(f"profile {meta['name']!r}: metadata must be plain JSON values: {exc}") from None
    st_path.parent.mkdir(parents=True, exist_ok=True)
    st_path.write_bytes(save(tensors, metadata={"format": FORMAT}))  # plain write: the umask's permissions
    st_path.with_suffix(".json").write_text(text)
    return st_path


def _resolve(name_or_path: str | Path) -> Path:
    if isinstance(name_or_path, Path):
        return _tensor_path(name_or_path)
    text = str(name_or_path)
    looks_like_path = text.endswith((".safetensors", ".json")) or "/" in text or "\\" in text
    if looks_like_path or _tensor_path(text).exists():
        return _tensor_path(text)
    from tokcompress.catalog import get_catalog

    try:
        return get_catalog().profile(text).path
    except SpecError as exc:
        raise ProfileError(str(exc)) from None


def load_profile(name_or_path: str | Path) -> Profile:
    """A profile by registered name (``tokcompress.catalog``) or by file path (with or without suffix)."""
    st_path = _resolve(name_or_path)
    json_path = st_path.with_suffix(".json")
    for p in (st_path, json_path):
        if not p.is_file():
            raise ProfileError(
                f"profile {name_or_path!r}: file {p} does not exist (a profile is NAME.safetensors + NAME.json)"
            )
    try:
        maps = load_file(str(st_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ProfileError(f"profile {name_or_path!r}: cannot read {st_path} as safetensors: {exc}") from None
    meta = read_document(json_path, "profile metadata", error=ProfileError)  # bounded, strict JSON
    return Profile(str(meta.get("name", st_path.stem)) if isinstance(meta, dict) else st_path.stem, maps, meta, st_path)

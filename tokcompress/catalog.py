"""The catalog: everything plugins register, collected once from the plugin manager by one collector.

A *kind* names a hook and what it returns: classes of a base type, keyed by a class attribute
(stages, placements, commands, metrics, datasets, model adapters, model sources), or files keyed by
their stem (presets, profiles, suites). Every kind goes through `collect`, so a wrong type, a missing
name or one name from two providers fails the same way, naming both providers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .command import Command
from .component import Component
from .debiasers.base import Debiaser
from .errors import PluginError, SpecError, shorten, unknown_name
from .graphs.base import GraphBuilder
from .mergers.base import Merger
from .placement import Placement
from .plugins import PluginManager, get_plugin_manager
from .scorers.base import Scorer
from .selectors.base import Selector
from .sources import ModelSource
from .study.datasets import Dataset
from .study.metrics import Metric

__all__ = ["Kind", "STAGES", "KINDS", "Catalog", "Entry", "FileEntry", "Preset", "collect", "get_catalog"]


@dataclass(frozen=True)
class Kind:
    """What a hook returns: subclasses of `base` keyed by their attribute `key`, or (``base`` None)
    files and folders of files with one of `suffixes`, keyed by file stem."""

    hook: str
    base: type | None = None
    key: str = "name"
    suffixes: tuple[str, ...] = ()


STAGES: dict[str, Kind] = {
    "scorer": Kind("tokcompress_register_scorers", Scorer),
    "debiaser": Kind("tokcompress_register_debiasers", Debiaser),
    "graph": Kind("tokcompress_register_graph_builders", GraphBuilder),
    "selector": Kind("tokcompress_register_selectors", Selector),
    "merger": Kind("tokcompress_register_mergers", Merger),
}
"""Pipeline stages by spec field."""

KINDS: dict[str, Kind] = {
    **STAGES,
    "placement": Kind("tokcompress_register_placements", Placement),
    "command": Kind("tokcompress_register_commands", Command),
    "model_source": Kind("tokcompress_register_model_sources", ModelSource),
    "metric": Kind("tokcompress_register_metrics", Metric),
    "dataset": Kind("tokcompress_register_datasets", Dataset),
    "preset": Kind("tokcompress_register_presets", suffixes=(".yaml", ".yml", ".json")),
    "profile": Kind("tokcompress_register_profiles", suffixes=(".safetensors",)),
    "suite": Kind("tokcompress_register_suites", suffixes=(".yaml", ".yml")),
}
"""Every kind the core defines; the transformers integration declares the model adapters' own and uses `collect` too."""

_CAPABILITIES = ("requires", "needs_scores", "needs_roles")


@dataclass(frozen=True)
class Entry:
    """A registered class and who provides it."""

    kind: str
    name: str
    cls: type
    provider: str  # "plugin (distribution)"


@dataclass(frozen=True)
class FileEntry:
    """A registered file and who provides it."""

    kind: str
    name: str
    path: Path
    provider: str


Preset = FileEntry


def _hook_results(pm: PluginManager, hook: str) -> list[tuple[str, Any]]:
    """(provider, item) for each item each plugin returns, in registration order."""
    out = []
    for impl in getattr(pm.hook, hook).get_hookimpls():  # registration order
        provider = pm.provider(impl.plugin_name)
        try:
            out.extend((provider, item) for item in impl.function() or ())
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a plugin's bug is reported as its own, not as a traceback of ours
            raise PluginError(
                f"plugin {provider}: hook {hook} failed: {type(exc).__name__}: {shorten(str(exc), quote=False)}"
            ) from exc
    return out


def _check_class(kind: str, spec: Kind, provider: str, cls: Any) -> str:
    if not (isinstance(cls, type) and issubclass(cls, spec.base)):
        raise PluginError(f"{provider} registered {cls!r} as a {kind}, but it is not a {spec.base.__name__} subclass")
    name = getattr(cls, spec.key, None)
    if not isinstance(name, str) or not name:
        raise PluginError(f"{provider}: {kind} class {cls.__qualname__} has no `{spec.key}`")
    if issubclass(cls, Component):
        if "name" in cls.Params.model_fields:
            raise PluginError(f"{provider}: {kind} {name!r} has a parameter called 'name', which specs reserve")
        for cap in _CAPABILITIES:
            if cap in vars(cls) and not callable(vars(cls)[cap]):
                raise PluginError(
                    f"{provider}: {kind} {name!r} sets `{cap}` as a value; capabilities are methods: "
                    f"define `def {cap}(self): ...`"
                )
    return name


def collect(pm: PluginManager, kind: str, spec: Kind) -> dict[str, Entry | FileEntry]:
    """name -> `Entry` (classes) or `FileEntry` (files) from the kind's hook; duplicates name both providers."""
    found: dict[str, Entry | FileEntry] = {}
    for provider, item in _hook_results(pm, spec.hook):
        if spec.base is None:
            root = Path(item)
            paths = sorted(p for p in root.iterdir() if p.suffix in spec.suffixes) if root.is_dir() else [root]
            entries = [FileEntry(kind, p.stem, p, provider) for p in paths]
        else:
            entries = [Entry(kind, _check_class(kind, spec, provider, item), item, provider)]
        for entry in entries:
            known = found.get(entry.name)
            if known is not None:
                raise PluginError(
                    f"duplicate {kind.replace('_', ' ')} {spec.key if spec.base else 'name'} {entry.name!r}: provided by {known.provider} ({_what(known)}) "
                    f"and by {entry.provider} ({_what(entry)}); uninstall one or rename it"
                )
            found[entry.name] = entry
    return found


def _what(entry: Entry | FileEntry) -> str:
    return str(entry.path) if isinstance(entry, FileEntry) else entry.cls.__qualname__


class Catalog:
    """Registered things by kind and name: the pipeline stages collected (and checked) at once, every
    other kind on first use, so that a listing or a pruner never imports what it does not need."""

    def __init__(self, pm: PluginManager) -> None:
        self.pm = pm
        self._kinds: dict[str, dict[str, Any]] = {}
        for field in STAGES:
            self.entries(field)

    def entries(self, kind: str, spec: Kind | None = None) -> dict[str, Any]:
        """name -> entry of `kind` (a core kind, or any kind whose `Kind` is given)."""
        if kind not in self._kinds:
            spec = spec or KINDS.get(kind)
            if spec is None:
                raise PluginError(unknown_name("kind", kind, KINDS))
            self._kinds[kind] = collect(self.pm, kind, spec)
        return self._kinds[kind]

    @property
    def components(self) -> dict[str, dict[str, Entry]]:
        """Pipeline stages: spec field -> name -> `Entry`."""
        return {field: self.entries(field) for field in STAGES}

    @property
    def presets(self) -> dict[str, FileEntry]:
        return self.entries("preset")

    @property
    def profiles(self) -> dict[str, FileEntry]:
        return self.entries("profile")

    @property
    def placements(self) -> dict[str, Entry]:
        return self.entries("placement")

    def get(self, kind: str, name: str) -> Any:
        """The entry `name` of `kind`; an unknown name lists what is available."""
        entries = self.entries(kind)
        try:
            return entries[name]
        except KeyError:
            what = {"preset": "preset (and no such file)", "profile": "positional-bias profile (and no such file)"}
            raise SpecError(unknown_name(what.get(kind, kind.replace("_", " ")), name, entries)) from None

    def preset(self, name: str) -> FileEntry:
        return self.get("preset", name)

    def profile(self, name: str) -> FileEntry:
        return self.get("profile", name)


@functools.lru_cache(maxsize=2)
def _catalog_for(pm: PluginManager) -> Catalog:
    return Catalog(pm)


def get_catalog() -> Catalog:
    """The catalog of the process-wide plugin manager (rebuilt after `tokcompress.plugins.reset()`)."""
    return _catalog_for(get_plugin_manager())

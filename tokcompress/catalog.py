"""The catalog: every registered component and preset, collected once from the plugin manager."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .component import Component
from .debiasers.base import Debiaser
from .errors import PluginError, SpecError, shorten, unknown_name
from .graphs.base import GraphBuilder
from .mergers.base import Merger
from .plugins import PluginManager, get_plugin_manager
from .scorers.base import Scorer
from .selectors.base import Selector

__all__ = ["STAGES", "Catalog", "Entry", "Preset", "collect_components", "get_catalog"]


@dataclass(frozen=True)
class StageKind:
    field: str  # spec field
    hook: str
    base: type


STAGES: dict[str, StageKind] = {
    "scorer": StageKind("scorer", "tokcompress_register_scorers", Scorer),
    "debiaser": StageKind("debiaser", "tokcompress_register_debiasers", Debiaser),
    "graph": StageKind("graph", "tokcompress_register_graph_builders", GraphBuilder),
    "selector": StageKind("selector", "tokcompress_register_selectors", Selector),
    "merger": StageKind("merger", "tokcompress_register_mergers", Merger),
}


@dataclass(frozen=True)
class Entry:
    """A registered component class and who provides it."""

    kind: str
    name: str
    cls: type[Component]
    provider: str  # "plugin (distribution)"


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    provider: str


def _hook_results(pm: PluginManager, hook: str) -> list[tuple[str, Any]]:
    """(provider, item) for each item each plugin returns, so conflicts can name both sides."""
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


def collect_components(pm: PluginManager, kinds: Mapping[str, tuple[str, type]]) -> dict[str, dict[str, Entry]]:
    """kind -> name -> `Entry` from each kind's hook; a non-subclass, a missing name, a parameter
    called ``name`` or the same name from two providers is a `PluginError` naming the providers."""
    found: dict[str, dict[str, Entry]] = {kind: {} for kind in kinds}
    for kind, (hook, base) in kinds.items():
        for provider, cls in _hook_results(pm, hook):
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise PluginError(f"{provider} registered {cls!r} as a {kind}, but it is not a {base.__name__} subclass")
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(f"{provider}: {kind} class {cls.__qualname__} has no `name`")
            if "name" in cls.Params.model_fields:
                raise PluginError(f"{provider}: {kind} {name!r} has a parameter called 'name', which specs reserve")
            known = found[kind].get(name)
            if known is not None:
                raise PluginError(
                    f"duplicate {kind} name {name!r}: provided by {known.provider} ({known.cls.__qualname__}) "
                    f"and by {provider} ({cls.__qualname__}); uninstall one or rename it"
                )
            found[kind][name] = Entry(kind, name, cls, provider)
    return found


class Catalog:
    """Components by kind and name, presets by name, and the `PrunerSpec` model built from them."""

    def __init__(self, pm: PluginManager) -> None:
        self.pm = pm
        self.components = collect_components(pm, {kind: (s.hook, s.base) for kind, s in STAGES.items()})
        self.presets: dict[str, Preset] = self._collect_files("tokcompress_register_presets", (".yaml", ".yml", ".json"), "preset")
        self.profiles: dict[str, Preset] = self._collect_files("tokcompress_register_profiles", (".safetensors",), "profile")

    def _collect_files(self, hook: str, suffixes: tuple[str, ...], what: str) -> dict[str, Preset]:
        found: dict[str, Preset] = {}
        for provider, root in _hook_results(self.pm, hook):
            root = Path(root)
            files = sorted(p for p in root.iterdir() if p.suffix in suffixes) if root.is_dir() else [root]
            for path in files:
                known = found.get(path.stem)
                if known is not None:
                    raise PluginError(
                        f"duplicate {what} name {path.stem!r}: {known.path} from {known.provider} "
                        f"and {path} from {provider}"
                    )
                found[path.stem] = Preset(path.stem, path, provider)
        return found

    def get(self, kind: str, name: str) -> Entry:
        try:
            return self.components[kind][name]
        except KeyError:
            raise SpecError(unknown_name(f"{kind}", name, self.components[kind])) from None

    def preset(self, name: str) -> Preset:
        try:
            return self.presets[name]
        except KeyError:
            raise SpecError(unknown_name("preset (and no such file)", name, self.presets)) from None

    def profile(self, name: str) -> Preset:
        try:
            return self.profiles[name]
        except KeyError:
            raise SpecError(unknown_name("positional-bias profile (and no such file)", name, self.profiles)) from None

    @functools.cached_property
    def spec_model(self) -> type:
        from .spec import make_spec_model

        return make_spec_model(self)


@functools.cache
def get_catalog() -> Catalog:
    """The catalog of the process-wide plugin manager, built on first use."""
    return Catalog(get_plugin_manager())

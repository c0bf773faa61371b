"""Metrics and dataset loaders by name, collected from the plugin manager like the pruner stages."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..errors import PluginError
from ..plugins import PluginManager, get_plugin_manager
from .datasets import Dataset
from .metrics import Metric

__all__ = ["StudyCatalog", "get_study_catalog"]

_KINDS = {"metric": ("tokcompress_register_metrics", Metric), "dataset": ("tokcompress_register_datasets", Dataset)}


@dataclass(frozen=True)
class StudyEntry:
    kind: str
    name: str
    cls: type
    provider: str


class StudyCatalog:
    """``.metrics`` and ``.datasets``: name -> `StudyEntry`; duplicates across plugins are errors naming both."""

    def __init__(self, pm: PluginManager) -> None:
        self.entries: dict[str, dict[str, StudyEntry]] = {kind: {} for kind in _KINDS}
        for kind, (hook, base) in _KINDS.items():
            for impl in getattr(pm.hook, hook).get_hookimpls():
                provider = pm.provider(impl.plugin_name)
                for cls in impl.function() or ():
                    self._add(kind, base, provider, cls)

    @property
    def metrics(self) -> dict[str, StudyEntry]:
        return self.entries["metric"]

    @property
    def datasets(self) -> dict[str, StudyEntry]:
        return self.entries["dataset"]

    def _add(self, kind: str, base: type, provider: str, cls: object) -> None:
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"{provider} registered {cls!r} as a {kind}, but it is not a {base.__name__} subclass")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"{provider}: {kind} class {cls.__qualname__} has no `name`")
        if "name" in cls.Params.model_fields:
            raise PluginError(f"{provider}: {kind} {name!r} has a parameter called 'name', which suites reserve")
        known = self.entries[kind].get(name)
        if known is not None:
            raise PluginError(
                f"duplicate {kind} name {name!r}: provided by {known.provider} ({known.cls.__qualname__}) "
                f"and by {provider} ({cls.__qualname__}); uninstall one or rename it"
            )
        self.entries[kind][name] = StudyEntry(kind, name, cls, provider)


@functools.lru_cache(maxsize=4)
def _catalog_for(pm: PluginManager) -> StudyCatalog:
    return StudyCatalog(pm)


def get_study_catalog() -> StudyCatalog:
    """The catalog of the current process-wide plugin manager (rebuilt after `tokcompress.plugins.reset()`)."""
    return _catalog_for(get_plugin_manager())

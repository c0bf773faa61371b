"""Metrics and dataset loaders by name, collected from the plugin manager like the pruner stages."""

from __future__ import annotations

import functools

from ..catalog import Entry, collect_components
from ..plugins import PluginManager, get_plugin_manager
from .datasets import Dataset
from .metrics import Metric

__all__ = ["StudyCatalog", "get_study_catalog"]

_KINDS = {"metric": ("tokcompress_register_metrics", Metric), "dataset": ("tokcompress_register_datasets", Dataset)}


class StudyCatalog:
    """``.metrics`` and ``.datasets``: name -> `Entry`; duplicates across plugins are errors naming both."""

    def __init__(self, pm: PluginManager) -> None:
        self.entries = collect_components(pm, _KINDS)

    @property
    def metrics(self) -> dict[str, Entry]:
        return self.entries["metric"]

    @property
    def datasets(self) -> dict[str, Entry]:
        return self.entries["dataset"]


@functools.lru_cache(maxsize=4)
def _catalog_for(pm: PluginManager) -> StudyCatalog:
    return StudyCatalog(pm)


def get_study_catalog() -> StudyCatalog:
    """The catalog of the current process-wide plugin manager (rebuilt after `tokcompress.plugins.reset()`)."""
    return _catalog_for(get_plugin_manager())

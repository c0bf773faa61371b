"""Metrics and dataset loaders by name: the catalog's ``metric`` and ``dataset`` kinds."""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog import Entry, get_catalog

__all__ = ["StudyCatalog", "get_study_catalog"]


@dataclass(frozen=True)
class StudyCatalog:
    """``.metrics`` and ``.datasets``: name -> `Entry`; duplicates across plugins are errors naming both."""

    metrics: dict[str, Entry]
    datasets: dict[str, Entry]


def get_study_catalog() -> StudyCatalog:
    catalog = get_catalog()
    return StudyCatalog(catalog.entries("metric"), catalog.entries("dataset"))

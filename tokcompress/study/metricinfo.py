"""What a report needs to know about a metric id: its title, unit, direction and value type.

Read from the registered `Metric` class, so figures and tables label themselves. A database can hold
rows of a metric whose plugin is no longer installed: the report still renders it, under its id, as a
continuous metric with no direction, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MetricInfo", "metric_info"]


@dataclass(frozen=True)
class MetricInfo:
    name: str
    title: str
    unit: str = ""
    higher_is_better: bool | None = None
    binary: bool = False
    registered: bool = True

    @property
    def arrow(self) -> str:
        return {True: "\u2191", False: "\u2193"}.get(self.higher_is_better, "")

    @property
    def direction(self) -> str:
        return {True: "higher is better", False: "lower is better"}.get(self.higher_is_better, "")

    def label(self, unit: bool = True, arrow: bool = True) -> str:
        """``First-token agreement (fraction) ↑``: an axis label."""
        text = self.title + (f" ({self.unit})" if unit and self.unit else "")
        return text + (f"\u00a0{self.arrow}" if arrow and self.arrow else "")  # no line break before the arrow


def metric_info(name: str) -> MetricInfo:
    """Metadata of the metric registered under `name`; a plain fallback when none is."""
    try:
        from .registry import get_study_catalog

        entry = get_study_catalog().metrics.get(name)
    except Exception:  # noqa: BLE001 - a report must render even if a plugin that wrote rows is broken
        entry = None
    if entry is None:
        return MetricInfo(name, name, registered=False)
    cls = entry.cls
    return MetricInfo(name, cls.title or name, cls.unit, cls.higher_is_better, cls.value_type == "binary")

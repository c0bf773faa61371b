"""The report's one self-contained HTML page, rendered from ``templates/report.html.j2`` (Jinja2).

Figures are embedded as base64 PNG, so the file can be mailed or archived alone. The template gets
plain, already formatted values (`tables.display_*`), so the page shows the same numbers as the
Markdown and LaTeX exports; Jinja2 escapes every value.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined

from .tables import display_main, display_paired

__all__ = ["render_html", "write_html"]

CSS_PX_PER_IN = 150  # figures are drawn at print size; on screen they are shown 1.5x larger than 96 px/in


def _env() -> Environment:
    return Environment(loader=PackageLoader("tokcompress.study", "templates"), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def _image(fig) -> dict[str, Any] | None:
    if fig is None:
        return None
    out = {"skipped": fig.skipped, "notes": fig.notes, "src": None, "width_px": 0}
    if fig.written:
        out["src"] = "data:image/png;base64," + base64.b64encode(fig.paths["png"].read_bytes()).decode()
        out["width_px"] = round(fig.width_in * CSS_PX_PER_IN)
        out["files"] = ", ".join(p.name for p in fig.paths.values())
    return out


def _spec_yaml(specs: list[dict[str, Any] | None]) -> str:
    if all(s is None for s in specs):
        return "# the unpruned model: no pruning"
    docs = [yaml.safe_dump(s, sort_keys=False, default_flow_style=False).rstrip() for s in specs if s is not None]
    return "\n---\n".join(docs)


def render_html(tables, paired, figures, info: dict[str, Any], specs: dict[str, list]) -> str:
    """The page as a string (see `write_html`)."""
    figs = {(f.kind, f.key): f for f in figures}
    by_key = {p.key: p for p in paired}
    groups: dict[str, dict[str, Any]] = {}
    for t in tables:
        group = groups.setdefault(t.group, {"title": f"{t.model} on {t.dataset}", "panels": _image(figs.get(("panels", t.group))),
                                            "tables": []})
        main = display_main(t, "html")
        p = by_key.get(t.key)
        group["tables"].append({
            "id": t.key,
            "title": t.info.title,
            "metric": t.metric,
            "unit": t.info.unit,
            "direction": t.info.direction,
            "value_type": "binary" if t.info.binary else "continuous",
            "main": main,
            "figure": _image(figs.get(("metric", t.key))),
            "paired": display_paired(p, "html") if p is not None else None,
            "baseline": p.baseline if p is not None else None,
        })
    return _env().get_template("report.html.j2").render(
        info=info,
        groups=list(groups.values()),
        specs=[{"label": label, "yaml": _spec_yaml(s)} for label, s in specs.items()],
        provenance=json.dumps(info["provenance"], indent=2),
        alpha=1 - info["level"],
    )


def write_html(path: Path, tables, paired, figures, info: dict[str, Any], specs: dict[str, list]) -> Path:
    path.write_text(render_html(tables, paired, figures, info, specs))
    return path

"""Report figures: each metric against the retained visual tokens, and one small-multiples figure.

Written at print size (`style`): 3.3 in wide for one metric, 7.0 in for the panels, 300 dpi PNG plus
SVG and PDF. Budgets sit at evenly spaced positions labelled with the tokens they retain, so that
series can be offset sideways (dodged) and stay apart even when budgets are close (25 and 28 of 256)
or specs coincide (identical series are also marked in the legend). Intervals are error bars, or
bands when there are few series whose bands do not overlap. The legend sits below the axes (long
labels wrapped rather than dropped to one column). A metric that cannot show anything is skipped with
the reason: constant (every value 0 on random weights), or equal to the x axis (``kept_tokens``).
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import style
from .aggregate import MetricTable
from .plan import UNPRUNED
from .tables import sig

__all__ = ["FigureFiles", "degenerate", "plotting_available", "plot_metric", "plot_panels", "write_figures"]

AXES_IN = 2.0  # height of one axes box
CHAR_EM = 0.55  # mean glyph width of DejaVu Sans, in em: when an axis label needs two lines


def plotting_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class FigureFiles:
    """One figure: the files written (format -> path) at `width_in` x `height_in` and `dpi`, or the reason
    it was skipped; `notes` say what a reader should know (identical series, metrics left out)."""

    key: str
    kind: str  # "metric" or "panels"
    metrics: list[str]
    paths: dict[str, Path] = field(default_factory=dict)
    width_in: float = 0.0
    height_in: float = 0.0
    dpi: int = style.DPI
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def written(self) -> bool:
        return bool(self.paths)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "metrics": self.metrics,
                "paths": {k: str(v) for k, v in self.paths.items()}, "width_in": self.width_in,
                "height_in": self.height_in, "dpi": self.dpi, "skipped": self.skipped, "notes": self.notes}


def degenerate(t: MetricTable) -> str | None:
    """Why a figure of `t` would show nothing, or None."""
    pruned = [(s, c) for (s, _), c in t.cells.items() if s != UNPRUNED and c.estimate.n]
    if not pruned:
        return "no pruned rows"
    numbers = [v for per_sample in t.values.values() for v in per_sample.values()] or [
        c.estimate.mean for c in t.cells.values() if c.estimate.n]
    if max(numbers) - min(numbers) <= 1e-12 * max(1.0, abs(numbers[0])):
        return f"constant: every value is {sig(numbers[0])}"
    if all(c.retained is not None and abs(c.estimate.mean - c.retained) <= 1e-9 * max(1.0, c.retained) for _, c in pruned):
        return "equals the x axis (retained visual tokens)"
    return None


# -- series -----------------------------------------------------------------------------------------


@dataclass
class _Series:
    spec: str
    style: style.SeriesStyle
    pos: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]
    same_as: str | None = None

    def label(self) -> str:
        return self.spec + (f" (= {self.same_as})" if self.same_as else "")


def _positions(t: MetricTable) -> tuple[list[str], list[str], str]:
    """Budgets with pruned cells, their tick labels (retained tokens when every spec retains the same
    count there, else the budget label) and the x label."""
    budgets = [b for b in t.budgets if any(s != UNPRUNED and (s, b) in t.cells for s in t.specs)]
    ticks, tokens = [], True
    for b in budgets:
        kept = {c.retained for (s, bb), c in t.cells.items() if bb == b and s != UNPRUNED}
        if len(kept) == 1 and None not in kept:
            (k,) = kept
            ticks.append(str(int(k)) if float(k).is_integer() else sig(k))
        else:
            ticks.append(b)
            tokens = False
    return budgets, ticks, "Retained visual tokens" if tokens else "Budget"


def _series(t: MetricTable, budgets: list[str]) -> list[_Series]:
    pruned = [s for s in t.specs if s != UNPRUNED]
    out = []
    for i, spec in enumerate(pruned):
        pts = [(j, t.cells[(spec, b)].estimate) for j, b in enumerate(budgets) if (spec, b) in t.cells]
        pts = [(j, e) for j, e in pts if e.n]
        if pts:
            out.append(_Series(spec, style.series_style(i), [j for j, _ in pts], [e.mean for _, e in pts],
                               [e.low for _, e in pts], [e.high for _, e in pts]))
    for i, s in enumerate(out):  # identical series: same points and intervals as an earlier one
        for earlier in out[:i]:
            if earlier.same_as is None and s.pos == earlier.pos and np.allclose(
                    [s.mean, s.low, s.high], [earlier.mean, earlier.low, earlier.high], rtol=1e-9, atol=1e-12):
                s.same_as = earlier.spec
                break
    return out


def _bands_overlap(series: list[_Series]) -> bool:
    for i, a in enumerate(series):
        for b in series[i + 1:]:
            for j, p in enumerate(a.pos):
                if p in b.pos:
                    k = b.pos.index(p)
                    if a.low[j] <= b.high[k] and b.low[k] <= a.high[j]:
                        return True
    return False


def _identical_note(series: list[_Series]) -> list[str]:
    groups: dict[str, list[str]] = {}
    for s in series:
        if s.same_as:
            groups.setdefault(s.same_as, [s.same_as]).append(s.spec)
    return [f"identical series (offset sideways): {', '.join(g)}" for g in groups.values()]


def _axis_label(info, length_in: float, pt: float = style.FONT_PT) -> str:
    """Title, unit and arrow on one line if they fit `length_in`, else the unit on a second line."""
    chars = max(8, int(length_in * 72 / (pt * CHAR_EM)))
    text = info.label()
    if len(text) <= chars:
        return text
    lines = [info.title, info.label().removeprefix(info.title).strip()] if info.unit or info.arrow else [text]
    return "\n".join(part for line in lines for part in textwrap.wrap(line, chars))


def _draw(ax, t: MetricTable, series: list[_Series], budgets: list[str], ticks: list[str]) -> str:
    """Draw `series` and the unpruned reference on `ax`; returns how intervals were drawn."""
    bands = len(series) <= 3 and not _bands_overlap(series)
    k = len(series)
    width = 0.0 if bands or k < 2 else min(0.6, 0.1 * (k - 1))
    ref, ref_label = _reference(t)
    if ref is not None:
        e = ref.estimate
        ax.axhline(e.mean, color=style.REFERENCE.color, linestyle=style.REFERENCE.linestyle, linewidth=0.9,
                   label=ref_label, zorder=1)
        if e.high > e.low:
            ax.axhspan(e.low, e.high, color="0.5", alpha=0.1, linewidth=0, zorder=0)
    for i, s in enumerate(series):
        dx = (i - (k - 1) / 2) * (width / (k - 1)) if width else 0.0
        x = np.asarray(s.pos, dtype=float) + dx
        mean, low, high = map(np.asarray, (s.mean, s.low, s.high))
        if bands:
            ax.plot(x, mean, label=s.label(), zorder=3, **s.style.kwargs())
            ax.fill_between(x, low, high, color=s.style.color, alpha=0.18, linewidth=0, zorder=2)
        else:
            ax.errorbar(x, mean, yerr=[mean - low, high - mean], label=s.label(), elinewidth=0.7, zorder=3,
                        markeredgewidth=0.5, **s.style.kwargs())
    ax.set_xticks(range(len(budgets)), ticks)
    ax.set_xlim(-0.5, len(budgets) - 0.5)
    ax.grid(axis="x", visible=False)
    if t.info.binary:
        ax.set_ylim(-0.04, 1.04)
    return "bands" if bands else "error bars"


def _legend_layouts(labels: list[str]):
    """Candidate (columns, labels) from widest to narrowest: the labels as they are in 6 .. 2 columns, then
    wrapped at hyphens and spaces in 2 columns, then one column. One long spec name must not force a
    one-column legend: twenty specs in one column made a single-column figure 60% legend."""
    for ncol in range(min(len(labels), 6), 1, -1):
        yield ncol, labels
    if len(labels) > 1:
        for chars in range(max(len(label) for label in labels) - 1, 11, -1):
            yield 2, [_wrap(label, chars) for label in labels]
    yield 1, labels


def _wrap(label: str, chars: int) -> str:
    """`label` in lines of at most `chars` (a longer word stays whole), broken at hyphens and spaces; the
    identical-series note ``(= spec)`` of a label that needs wrapping starts a line of its own."""
    if len(label) <= chars:
        return label
    name, sep, same = label.partition(" (= ")
    parts = [name, "(= " + same] if sep else [label]
    return "\n".join(line for part in parts for line in textwrap.wrap(part, chars, break_on_hyphens=True))


def _place_legend(fig, handles, labels, body_in: float) -> float:
    """A legend below the axes in the first of `_legend_layouts` that fits the figure's width (measured,
    not guessed), then the figure made tall enough for `body_in` of axes plus the legend; returns the new
    height."""
    width = fig.get_size_inches()[0]
    renderer = fig.canvas.get_renderer()
    for ncol, texts in _legend_layouts(list(labels)):
        legend = fig.legend(handles, texts, loc="outside lower center", ncol=ncol)
        box = legend.get_window_extent(renderer)
        if box.width / fig.dpi <= width - 0.1 or ncol == 1:
            break
        legend.remove()
    height = round(float(body_in + box.height / fig.dpi + 0.08), 2)
    fig.set_size_inches(width, height)
    return height


def _save(fig, stem: Path) -> dict[str, Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt in style.FORMATS:
        path = stem.with_name(f"{stem.name}.{fmt}")
        meta = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}[fmt]
        fig.savefig(path, format=fmt, dpi=style.DPI, metadata=meta)
        paths[fmt] = path
    return paths


def _reference(t: MetricTable):
    """The unpruned cell and its legend label, or (None, None)."""
    ref = t.cells.get((UNPRUNED, "all")) or next((c for (s, _), c in t.cells.items() if s == UNPRUNED), None)
    if ref is None or not ref.estimate.n:
        return None, None
    kept = f" ({int(ref.retained)} tokens)" if ref.retained is not None and float(ref.retained).is_integer() else ""
    return ref, UNPRUNED + kept


def plot_metric(t: MetricTable, stem: Path) -> FigureFiles:
    """One metric against the retained tokens at single-column width; skipped (no files) when degenerate."""
    out = FigureFiles(t.key, "metric", [t.metric])
    reason = degenerate(t)
    if reason:
        out.skipped = reason
        return out
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    budgets, ticks, xlabel = _positions(t)
    series = _series(t, budgets)
    width = style.SINGLE_COLUMN_IN
    with matplotlib.rc_context(style.rc()):
        fig, ax = plt.subplots(figsize=(width, AXES_IN + 1))
        how = _draw(ax, t, series, budgets, ticks)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(_axis_label(t.info, AXES_IN))
        ax.set_title(f"{t.model} on {t.dataset}", fontsize=style.SMALL_PT)
        height = _place_legend(fig, *ax.get_legend_handles_labels(), AXES_IN + 0.6)
        out.paths = _save(fig, stem)
        plt.close(fig)
    out.width_in, out.height_in = width, height
    out.notes = [f"intervals drawn as {how}", *_identical_note(series)]
    return out


def plot_panels(tables: list[MetricTable], stem: Path) -> FigureFiles:
    """Small multiples: one panel per metric of one (model, dataset), a shared legend; page width."""
    first = tables[0]
    out = FigureFiles(first.group, "panels", [t.metric for t in tables])
    shown = [t for t in tables if not degenerate(t)]
    left_out = [f"{t.metric} ({degenerate(t)})" for t in tables if degenerate(t)]
    if left_out:
        out.notes.append("left out: " + "; ".join(left_out))
    if len(shown) < 2:
        out.skipped = "no metric to show" if not shown else "one metric to show: its own figure suffices"
        return out
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    ncols = min(3, len(shown)) if len(shown) != 4 else 2
    nrows = math.ceil(len(shown) / ncols)
    width = style.DOUBLE_COLUMN_IN
    all_series = {t.metric: _series(t, _positions(t)[0]) for t in shown}
    body = nrows * (AXES_IN * 0.85 + 0.5) + 0.25
    with matplotlib.rc_context(style.rc()):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, body + 1), squeeze=False)
        legend: dict[str, Any] = {}
        for i, (ax, t) in enumerate(zip(axes.flat, shown)):
            budgets, ticks, xlabel = _positions(t)
            _draw(ax, t, all_series[t.metric], budgets, ticks)
            if i + ncols >= len(shown):  # nothing below it: the bottom panel of its column
                ax.set_xlabel(xlabel)
            ax.set_title(t.info.title + (f" {t.info.arrow}" if t.info.arrow else ""))
            if t.info.unit:
                ax.set_ylabel(t.info.unit)
            for h, name in zip(*ax.get_legend_handles_labels()):
                legend.setdefault(name.split(" (= ")[0] if not name.startswith(UNPRUNED) else name, h)
        for ax in list(axes.flat)[len(shown):]:
            ax.set_visible(False)
        fig.suptitle(f"{first.model} on {first.dataset}", fontsize=style.FONT_PT)
        height = _place_legend(fig, list(legend.values()), list(legend), body)
        out.paths = _save(fig, stem)
        plt.close(fig)
    out.width_in, out.height_in = width, height
    for t in shown:
        out.notes += [f"{t.info.title}: {n}" for n in _identical_note(all_series[t.metric])]
    return out


def write_figures(tables: list[MetricTable], folder: Path) -> list[FigureFiles]:
    """``KEY.{png,svg,pdf}`` per metric table, then ``MODEL__DATASET.{png,svg,pdf}`` with the panels."""
    figures = [plot_metric(t, folder / t.key) for t in tables]
    groups: dict[tuple[str, str], list[MetricTable]] = {}
    for t in tables:
        groups.setdefault((t.model, t.dataset), []).append(t)
    for group in groups.values():
        figures.append(plot_panels(group, folder / group[0].group))
    for f in figures:  # a figure skipped now must not leave an earlier report's file behind
        if f.skipped:
            for fmt in style.FORMATS:
                (folder / f"{f.key}.{fmt}").unlink(missing_ok=True)
    return figures

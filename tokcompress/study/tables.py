"""Tables of a report as text: one number format per table, exported as CSV, Markdown and LaTeX.

Numbers get a fixed count of significant figures (3) in plain decimal notation, but never more than two
decimals beyond what the table's largest value needs (an interval bound of -0.00047 beside 0.875 is
-0.0005); a table whose values are all tiny or huge is scaled by one power of ten, stated in its
caption, so ``0.000196`` never sits beside ``3.56e-05``. CSV files hold the raw numbers (long form, one row per cell or comparison) for
scripts; Markdown and LaTeX (booktabs) hold the formatted tables for documents. pandas writes all three.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import pandas as pd

if TYPE_CHECKING:
    from .aggregate import MetricTable
    from .paired import PairedTable

__all__ = [
    "DisplayCell",
    "DisplayTable",
    "NumberFormat",
    "display_main",
    "display_paired",
    "display_paired_grid",
    "format_p",
    "main_frame",
    "number_format",
    "paired_frame",
    "sig",
    "to_latex",
    "to_markdown",
    "write_tables",
]

SIG = 3
P_FLOOR = 0.001
_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")


def sig(x: float, digits: int = SIG, max_decimals: int | None = None) -> str:
    """`x` to `digits` significant figures, decimal notation, trailing zeros kept (``0.500``, ``12.0``),
    with at most `max_decimals` decimals."""
    if x is None or not math.isfinite(x):
        return "-"
    if x == 0:
        return "0"
    decimals = digits - 1 - math.floor(math.log10(abs(x)))
    rounded = round(x, decimals)
    if rounded != 0 and math.floor(math.log10(abs(rounded))) != math.floor(math.log10(abs(x))):
        decimals -= 1  # 9.996 -> 10.0, not 10.00
    if max_decimals is not None and decimals > max_decimals:
        decimals = max_decimals
    decimals = max(0, decimals)
    return f"{round(x, decimals):.{decimals}f}"


@dataclass(frozen=True)
class NumberFormat:
    """Significant figures after dividing by ``10**exponent`` (0: no scaling), at most `max_decimals` decimals."""

    exponent: int = 0
    digits: int = SIG
    max_decimals: int | None = None

    def __call__(self, x: float) -> str:
        if x is None or not math.isfinite(x):
            return "-"
        return sig(x / 10.0 ** self.exponent, self.digits, self.max_decimals)

    def suffix(self, style: str = "text") -> str:
        """How the caption states the scale: ``x10^-3`` (text), ``×10⁻³`` (html), ``$\\times 10^{-3}$`` (latex)."""
        if not self.exponent:
            return ""
        if style == "latex":
            return f"$\\times 10^{{{self.exponent}}}$"
        if style == "html":
            return "\u00d710" + str(self.exponent).translate(_SUPERSCRIPT)
        return f"x10^{self.exponent}"


def number_format(values: Iterable[float], digits: int = SIG) -> NumberFormat:
    """A power-of-1000 scale when the largest magnitude is below 0.01 or at least 1e5, else none; at most
    two decimals more than the largest value needs for `digits` significant figures."""
    mags = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if not mags:
        return NumberFormat(0, digits)
    top = max(mags)
    exponent = 0 if 1e-2 <= top < 1e5 else 3 * math.floor(math.log10(top) / 3)
    top /= 10.0 ** exponent
    return NumberFormat(exponent, digits, max(0, digits - 1 - math.floor(math.log10(top)) + 2))


def format_p(p: float, latex: bool = False) -> str:
    """Three decimals, floored at ``<0.001``."""
    if p is None or not math.isfinite(p):
        return "-"
    if p < P_FLOOR:
        return ("$<$" if latex else "<") + f"{P_FLOOR:g}"
    return f"{p:.3f}"


def _esc(style: str):
    return latex_escape if style == "latex" else (lambda text: text)


def _caption(title: str, unit: str, fmt: NumberFormat, style: str) -> str:
    """``Title (unit, scale)``, escaped for `style` (``text``, ``html`` or ``latex``)."""
    esc = _esc(style)
    parts = [u for u in (esc(unit), fmt.suffix(style)) if u]
    return esc(title) + (f" ({', '.join(parts)})" if parts else "")


# -- display tables (formatted, shared by console, HTML, Markdown and LaTeX) ---------------------------


@dataclass(frozen=True)
class DisplayCell:
    text: str
    n: int
    mark_n: bool = False  # n differs from the table's usual n: print it beside the value


@dataclass
class DisplayTable:
    caption: str
    columns: list[str]
    rows: list[tuple[str, list]]
    fmt: NumberFormat
    n: int | None = None  # the usual n per cell


def _cell_text(est, fmt: NumberFormat) -> str:
    if est.n == 0:
        return ""
    if est.method in ("none", "constant"):
        return fmt(est.mean)
    return f"{fmt(est.mean)} [{fmt(est.low)}, {fmt(est.high)}]"


def main_format(t: "MetricTable") -> NumberFormat:
    return number_format(v for c in t.cells.values() for v in (c.estimate.mean, c.estimate.low, c.estimate.high))


def display_main(t: "MetricTable", style: str = "text") -> DisplayTable:
    """Specs x budgets; a cell is ``mean [low, high]`` (no interval when n = 1 or every sample is equal)."""
    fmt = main_format(t)
    usual = Counter(c.estimate.n for c in t.cells.values()).most_common(1)[0][0] if t.cells else None
    rows = []
    for spec in t.specs:
        cells = []
        for b in t.budgets:
            c = t.cells.get((spec, b))
            cells.append(DisplayCell(_cell_text(c.estimate, fmt), c.estimate.n, c.estimate.n != usual) if c else
                         DisplayCell("", 0))
        if any(c.text for c in cells):
            rows.append((spec, cells))
    info = t.info
    level_note = ", ".join(x for x in (info.direction, f"n = {usual} per cell unless marked" if usual else "") if x)
    caption = _caption(info.title, info.unit, fmt, style) + _esc(style)(
        f" - {t.model} on {t.dataset}" + (f"; {level_note}" if level_note else ""))
    return DisplayTable(caption, list(t.budgets), rows, fmt, usual)


PAIRED_COLUMNS = ["spec", "budget", "n", "spec mean", "baseline mean", "difference [interval]", "test", "p", "p (Holm)", "verdict"]


def _test_text(r) -> str:
    if r.result.test == "mcnemar-exact":
        return f"McNemar ({r.result.a_only}/{r.result.b_only})"
    return "Wilcoxon"


def display_paired(p: "PairedTable", style: str = "text") -> DisplayTable:
    """Long form: one row per (spec, budget), numbers in the main table's format."""
    t, fmt, latex = p.table, main_format(p.table), style == "latex"
    rows = []
    for r in p.rows:
        res = r.result
        budget = r.budget if r.budget == r.baseline_budget else f"{r.budget} vs {r.baseline_budget}"
        interval = f" [{fmt(res.low)}, {fmt(res.high)}]" if res.interval not in ("none", "constant") else ""
        rows.append((r.spec, [budget, str(res.n), fmt(res.mean_a), fmt(res.mean_b), fmt(res.difference) + interval,
                              _test_text(r), format_p(res.p, latex), format_p(r.p_holm, latex),
                              r.verdict(p.alpha, t.info.higher_is_better)]))
    caption = _caption(t.info.title, t.info.unit, fmt, style) + _esc(style)(
        f" - {t.model} on {t.dataset}: spec minus {p.baseline} on shared samples; {p.level:.0%} intervals; "
        f"p (Holm) over the {len(p.rows)} comparisons of this table")
    return DisplayTable(caption, PAIRED_COLUMNS[1:], rows, fmt)


def display_paired_grid(p: "PairedTable") -> DisplayTable:
    """Specs x budgets of ``difference [interval]``, ``*`` where Holm-significant: the console view."""
    t, fmt = p.table, main_format(p.table)
    budgets = [b for b in t.budgets if any(r.budget == b for r in p.rows)]
    specs = [s for s in t.specs if any(r.spec == s for r in p.rows)]
    found = {(r.spec, r.budget): r for r in p.rows}
    rows = []
    for s in specs:
        cells = []
        for b in budgets:
            r = found.get((s, b))
            if r is None:
                cells.append("")
                continue
            res = r.result
            interval = f" [{fmt(res.low)}, {fmt(res.high)}]" if res.interval not in ("none", "constant") else ""
            cells.append(fmt(res.difference) + interval + (" *" if r.p_holm < p.alpha else ""))
        rows.append((s, cells))
    caption = f"* Holm-adjusted p < {p.alpha:.2g}" + (f"; values {fmt.suffix()}" if fmt.exponent else "")
    return DisplayTable(caption, budgets, rows, fmt)


# -- frames and files ---------------------------------------------------------------------------------


def main_frame(tables: list["MetricTable"]) -> pd.DataFrame:
    """Every cell of every table, raw numbers, long form."""
    records = [
        {"model": t.model, "dataset": t.dataset, "metric": t.metric, "spec": s, "budget": b, "retained": c.retained,
         "n": c.estimate.n, "mean": c.estimate.mean, "low": c.estimate.low, "high": c.estimate.high,
         "interval": c.estimate.method}
        for t in tables for (s, b), c in t.cells.items()
    ]
    return pd.DataFrame.from_records(records, columns=["model", "dataset", "metric", "spec", "budget", "retained", "n",
                                                      "mean", "low", "high", "interval"])


PAIRED_CSV = ["model", "dataset", "metric", "baseline", "spec", "budget", "baseline_budget", "n", "spec_mean",
              "baseline_mean", "difference", "low", "high", "interval", "test", "p", "p_holm", "spec_only",
              "baseline_only", "verdict"]


def paired_frame(paired: list["PairedTable"]) -> pd.DataFrame:
    """Every comparison, raw numbers, long form."""
    records = [{**{k: d[k] for k in ("model", "dataset", "metric", "baseline")}, **row}
               for d in (p.to_dict() for p in paired) for row in d["rows"]]
    frame = pd.DataFrame.from_records(records, columns=PAIRED_CSV)
    return frame.astype({"spec_only": "Int64", "baseline_only": "Int64"})


def _frame(d: DisplayTable, first: str = "spec") -> pd.DataFrame:
    data = [[h, *((c.text + (f" (n={c.n})" if c.mark_n else "")) if isinstance(c, DisplayCell) else c for c in cells)]
            for h, cells in d.rows]
    return pd.DataFrame(data, columns=[first, *d.columns])


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (pandas' own escaping would also escape the ``$<$`` of p-values)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(d: DisplayTable, label: str, raw_columns: Iterable[str] = ()) -> str:
    """A booktabs ``table`` environment; cells are escaped except those in `raw_columns` (already LaTeX);
    the caption is LaTeX already (``display_*(..., style="latex")``)."""
    frame = _frame(d)
    raw = set(raw_columns)
    for col in frame.columns:
        if col not in raw:
            frame[col] = frame[col].map(latex_escape)
    frame.columns = [latex_escape(c) for c in frame.columns]
    align = "l" + "r" * (len(frame.columns) - 1)
    return frame.to_latex(index=False, escape=False, caption=d.caption, label=label, column_format=align)


def to_markdown(d: DisplayTable) -> str:
    # disable_numparse: tabulate would otherwise re-parse "1.00" as 1 and drop the significant zeros
    return f"**{d.caption}**\n\n" + _frame(d).to_markdown(index=False, disable_numparse=True) + "\n"


def write_tables(tables: list["MetricTable"], paired: list["PairedTable"], folder: Path) -> list[Path]:
    """``main.csv`` and ``paired.csv`` (all tables, raw), and per table ``KEY.md`` / ``KEY.tex`` plus
    ``KEY__paired.md`` / ``KEY__paired.tex``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in (("main.csv", main_frame(tables)), ("paired.csv", paired_frame(paired))):
        frame.to_csv(folder / name, index=False)
        written.append(folder / name)
    by_key = {p.key: p for p in paired}
    for t in tables:
        docs = [(t.key, display_main(t), display_main(t, "latex"), ())]
        if t.key in by_key:
            p = by_key[t.key]
            docs.append((t.key + "__paired", display_paired(p), display_paired(p, "latex"),
                         ("p", "p (Holm)")))
        for stem, text_view, latex_view, raw in docs:
            (folder / f"{stem}.md").write_text(to_markdown(text_view))
            (folder / f"{stem}.tex").write_text(to_latex(latex_view, f"tab:{stem}", raw))
            written += [folder / f"{stem}.md", folder / f"{stem}.tex"]
    return written

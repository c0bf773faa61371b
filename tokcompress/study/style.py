"""The look of every report figure: sizes, fonts, and one distinct style per spec.

Figures are drawn at the size they are printed at, so that 8 pt text stays 8 pt: a single journal
column is 3.3 in wide, a full page width 7.0 in. Colours are the Okabe-Ito palette (distinguishable
with the common colour-vision deficiencies and in greyscale together with the markers); every spec gets
its own colour + marker + line style, so specs stay apart even where their lines coincide. Nothing here
imports matplotlib, so the report can describe figures without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DPI", "DOUBLE_COLUMN_IN", "FORMATS", "REFERENCE", "SINGLE_COLUMN_IN", "SeriesStyle", "rc", "series_style"]

SINGLE_COLUMN_IN = 3.3
DOUBLE_COLUMN_IN = 7.0
DPI = 300
FORMATS = ("png", "svg", "pdf")
FONT_PT = 8.0
SMALL_PT = 7.0

# Okabe & Ito (2008), without yellow (too light on white) and black (the unpruned reference).
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<")
LINESTYLES = ("-", (0, (4, 1.5)), (0, (1, 1.2)), (0, (5, 1.5, 1, 1.5)))


@dataclass(frozen=True)
class SeriesStyle:
    color: str
    marker: str
    linestyle: Any

    def kwargs(self) -> dict[str, Any]:
        return {"color": self.color, "marker": self.marker, "linestyle": self.linestyle}


REFERENCE = SeriesStyle("#000000", "", (0, (6, 3)))
"""The unpruned model: a black dashed horizontal line."""


def series_style(index: int) -> SeriesStyle:
    """Style of the `index`-th spec: colour and marker cycle at coprime-ish lengths (6, 8), and the line
    style changes every 6, so the first 24 specs all differ in at least two of the three."""
    return SeriesStyle(COLOURS[index % len(COLOURS)], MARKERS[index % len(MARKERS)],
                       LINESTYLES[(index // len(COLOURS)) % len(LINESTYLES)])


def rc() -> dict[str, Any]:
    """matplotlib rcParams of every report figure (use with ``matplotlib.rc_context``)."""
    return {
        "font.size": FONT_PT,
        "axes.titlesize": FONT_PT,
        "axes.labelsize": FONT_PT,
        "xtick.labelsize": SMALL_PT,
        "ytick.labelsize": SMALL_PT,
        "legend.fontsize": SMALL_PT,
        "figure.titlesize": FONT_PT,
        "axes.linewidth": 0.6,
        "xtick.major.width": 0.6,
        "ytick.major.width": 0.6,
        "xtick.major.size": 2.5,
        "ytick.major.size": 2.5,
        "lines.linewidth": 1.0,
        "lines.markersize": 3.5,
        "errorbar.capsize": 1.5,
        "axes.grid": True,
        "grid.linewidth": 0.4,
        "grid.alpha": 0.35,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
        "legend.handlelength": 2.2,
        "legend.columnspacing": 1.0,
        "legend.handletextpad": 0.4,
        "legend.borderaxespad": 0.2,
        "figure.dpi": DPI,
        "savefig.dpi": DPI,
        "svg.fonttype": "none",  # text stays text in SVG: searchable, editable
        "svg.hashsalt": "tokcompress",  # the same figure gives the same SVG file
        "pdf.fonttype": 42,  # TrueType in PDF: journals reject Type 3 fonts
        "ps.fonttype": 42,
        "figure.constrained_layout.use": True,
    }

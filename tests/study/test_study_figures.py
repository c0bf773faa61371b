"""Figures: every file at its declared size and dpi, degenerate metrics skipped with a reason, and a report
that still writes its tables and HTML when matplotlib is missing."""

from __future__ import annotations

import re
import sys

import pytest
from PIL import Image

from report_db import write_db
from tokcompress.study import style
from tokcompress.study.db import ResultsDB
from tokcompress.study.figures import write_figures
from tokcompress.study.report import PLOTS_HINT, build_tables, write_report

pytest.importorskip("matplotlib")

KEPT = {"keep=4": 4, "keep=8": 8, "all": 16}


def values(specs: list[str]) -> dict:
    out = {("unpruned", "all"): {"first_token_agreement": [1.0] * 6, "kl_next_token": [0.0] * 6,
                                 "kept_tokens": [16.0] * 6, "exact_match": [0.0] * 6}}
    for i, spec in enumerate(specs):
        for budget, kept in (("keep=4", 4), ("keep=8", 8)):
            out[(spec, budget)] = {  # every spec agrees on first_token_agreement: identical series
                "first_token_agreement": [1.0, 0.0, 1.0, 1.0, 0.0, float(kept == 8)],
                "kl_next_token": [0.01 * (i + 1) / kept * (1 + 0.1 * s) for s in range(6)],
                "kept_tokens": [float(kept)] * 6,
                "exact_match": [0.0] * 6,
            }
    return out


def tables_for(tmp_path, specs):
    with ResultsDB(write_db(tmp_path / "r.sqlite", values(specs), kept=KEPT)) as db:
        return build_tables(db.rows())


def svg_size(path) -> tuple[float, float]:
    head = path.read_text()[:2000]
    w, h = (float(re.search(rf'<svg[^>]*\b{k}="([\d.]+)pt"', head, re.S).group(1)) for k in ("width", "height"))
    return w / 72, h / 72


def pdf_size(path) -> tuple[float, float]:
    box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", path.read_bytes())
    return float(box.group(1)) / 72, float(box.group(2)) / 72


def test_every_figure_file_has_the_declared_size_and_dpi(tmp_path):
    tables = tables_for(tmp_path, ["fastv", "d2pruner", "random"])
    figures = write_figures(tables, tmp_path / "plots")
    written = [f for f in figures if f.written]
    again = write_figures(tables, tmp_path / "again")  # reproducible: the same bytes every time
    assert [p.read_bytes() for f in again for p in f.paths.values()] == [
        p.read_bytes() for f in figures for p in f.paths.values()]
    assert {f.kind for f in written} == {"metric", "panels"}
    for f in written:
        assert set(f.paths) == set(style.FORMATS) == {"png", "svg", "pdf"}
        assert f.width_in == (style.SINGLE_COLUMN_IN if f.kind == "metric" else style.DOUBLE_COLUMN_IN)
        assert f.dpi == 300
        with Image.open(f.paths["png"]) as im:
            assert im.size == (round(f.width_in * 300), round(f.height_in * 300))
            assert im.info["dpi"] == pytest.approx((300, 300), abs=0.01)
        assert svg_size(f.paths["svg"]) == pytest.approx((f.width_in, f.height_in), abs=1e-3)
        assert pdf_size(f.paths["pdf"]) == pytest.approx((f.width_in, f.height_in), abs=1e-3)
        assert 'font-family' in f.paths["svg"].read_text()  # text stays text (svg.fonttype none)


def test_degenerate_metrics_are_skipped_with_the_reason(tmp_path):
    figures = {(f.kind, f.metrics[0] if f.kind == "metric" else "all"): f
               for f in write_figures(tables_for(tmp_path, ["fastv", "d2pruner"]), tmp_path / "plots")}
    assert figures[("metric", "kept_tokens")].skipped == "equals the x axis (retained visual tokens)"
    assert figures[("metric", "exact_match")].skipped == "constant: every value is 0"
    assert not figures[("metric", "kept_tokens")].paths and not list((tmp_path / "plots").glob("*kept_tokens*"))
    # an earlier report's file of a figure that is skipped now is removed, not left to mislead
    (tmp_path / "plots" / "m__d__exact_match.png").write_bytes(b"stale")
    write_figures(tables_for(tmp_path / "again", ["fastv", "d2pruner"]), tmp_path / "plots")
    assert not (tmp_path / "plots" / "m__d__exact_match.png").exists()
    panels = figures[("panels", "all")]
    assert panels.written and "kept_tokens (equals the x axis" in panels.notes[0] and "exact_match (constant" in panels.notes[0]
    agreement = figures[("metric", "first_token_agreement")]
    assert "identical series (offset sideways): fastv, d2pruner" in agreement.notes


def test_many_specs_grow_the_legend_below_not_the_width(tmp_path):
    few = write_figures(tables_for(tmp_path / "a", ["fastv", "random"]), tmp_path / "a" / "plots")
    many = write_figures(tables_for(tmp_path / "b", [f"d2pruner-variant-{i}-long-name" for i in range(12)]),
                         tmp_path / "b" / "plots")
    kl_few, kl_many = (next(f for f in figs if f.metrics == ["kl_next_token"]) for figs in (few, many))
    assert kl_few.width_in == kl_many.width_in == 3.3
    assert kl_many.height_in > kl_few.height_in + 0.8  # twelve legend rows below the axes
    with Image.open(kl_many.paths["png"]) as im:
        assert im.size[0] == 990


def test_a_long_spec_name_wraps_in_a_two_column_legend_instead_of_one_column(tmp_path):
    # twenty specs, the longest too wide for half of 3.3 in: one column would be twenty legend rows
    specs = [f"spec-{i}" for i in range(19)] + ["cdpruner-positive-original-positions"]
    kl = next(f for f in write_figures(tables_for(tmp_path, specs), tmp_path / "plots") if f.metrics == ["kl_next_token"])
    svg = kl.paths["svg"].read_text()
    assert "cdpruner-positive-" in svg and "cdpruner-positive-original-positions" not in svg  # text stays text in SVG
    assert kl.width_in == 3.3 and kl.height_in < 4.6  # one column: 20 rows, about 6 in


def test_wrapped_labels_keep_words_and_put_the_identical_note_on_its_own_line():
    from tokcompress.study.figures import _wrap

    assert _wrap("d2pruner-grounding-measured (= d2pruner-measured)", 22) == "d2pruner-grounding-\nmeasured\n(= d2pruner-measured)"
    assert _wrap("fastv (= d2pruner)", 40) == "fastv (= d2pruner)"


def test_report_without_matplotlib_writes_tables_and_html_and_says_how_to_get_plots(tmp_path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    path = write_db(tmp_path / "r.sqlite", values(["fastv", "random"]), kept=KEPT)
    files = write_report(path, tmp_path / "out", quiet=True)
    assert files.plots == [] and files.html.is_file() and (tmp_path / "out" / "tables" / "main.csv").is_file()
    assert not (tmp_path / "out" / "plots").exists()
    err = capsys.readouterr().err
    assert err.strip() == f"note: {PLOTS_HINT}" and "Traceback" not in err
    assert PLOTS_HINT.split(":")[0] in files.html.read_text()

"""Table exports: one number format per table, CSV and LaTeX that read back to the same numbers."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from report_db import write_db
from tokcompress.study.report import write_report
from tokcompress.study.tables import (DisplayTable, NumberFormat, display_main, format_p, main_frame, number_format,
                                      paired_frame, sig, to_markdown)

VALUES = {
    ("unpruned", "all"): {"kl_next_token": [0.0] * 6, "first_token_agreement": [1.0] * 6},
    ("fastv", "keep=4"): {"kl_next_token": [1.96e-4, 1.8e-4, 2.1e-4, 1.7e-4, 2.3e-4, 1.9e-4],
                          "first_token_agreement": [1, 1, 1, 1, 0, 1]},
    ("fastv", "keep=8"): {"kl_next_token": [3.56e-5, 3.1e-5, 4.0e-5, 3.3e-5, 3.9e-5, 3.4e-5],
                          "first_token_agreement": [1, 1, 1, 1, 1, 1]},
    ("my_spec", "keep=4"): {"kl_next_token": [8.5e-3, 7.4e-3, 9.8e-3, 8.1e-3, 9.0e-3, None],
                            "first_token_agreement": [0, 1, 0, 0, 1, 0]},
}


@pytest.mark.parametrize("x, text", [(0.000196, "0.000196"), (3.56e-05, "0.0000356"), (0.5, "0.500"), (12, "12.0"),
                                     (9.996, "10.0"), (-0.0123456, "-0.0123"), (123456, "123456"), (0, "0")])
def test_significant_figures(x, text):
    assert sig(x) == text


def test_one_format_per_table():
    kl = number_format([1.96e-4, 3.56e-5, 8.5e-3])
    assert (kl(1.96e-4), kl(3.56e-5), kl(8.5e-3), kl.suffix()) == ("0.196", "0.0356", "8.50", "x10^-3")
    share = number_format([0.875, -0.00047, 1.0])  # an interval bound near 0 beside proportions
    assert (share(-0.00047), share(0.0715), share(1.0), share.suffix()) == ("-0.0005", "0.0715", "1.00", "")
    assert (format_p(0.00001), format_p(0.00001, latex=True), format_p(0.0312)) == ("<0.001", "$<$0.001", "0.031")


def read_latex_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """The header and body cells of a booktabs tabular, unescaped."""
    body = text.split("\\midrule")[1].split("\\bottomrule")[0]
    header = text.split("\\toprule")[1].split("\\midrule")[0]

    def cells(line: str) -> list[str]:
        return [c.strip().replace("\\_", "_").replace("\\%", "%") for c in line.strip().removesuffix("\\\\").split("&")]

    return cells(header), [cells(line) for line in body.strip().splitlines()]


def test_csv_and_latex_round_trip(tmp_path):
    files = write_report(write_db(tmp_path / "r.sqlite", VALUES, kept={"keep=4": 4, "keep=8": 8, "all": 16}),
                         tmp_path / "out", quiet=True, plots=False)
    folder = tmp_path / "out" / "tables"
    # CSV: the raw numbers, exactly
    csv = pd.read_csv(folder / "main.csv")
    pd.testing.assert_frame_equal(csv, main_frame(files.tables), check_dtype=False)
    cell = csv[(csv.metric == "kl_next_token") & (csv.spec == "my_spec")].iloc[0]
    assert (cell["n"], cell["mean"], cell["interval"]) == (5, pytest.approx(0.008560), "bca")
    paired = pd.read_csv(folder / "paired.csv")
    pd.testing.assert_frame_equal(paired, paired_frame(files.paired), check_dtype=False)
    assert set(paired.baseline) == {"fastv"} and set(paired.spec) == {"my_spec"}

    # LaTeX: booktabs, the same cells as the display table, numbers within the printed precision
    kl = next(t for t in files.tables if t.metric == "kl_next_token")
    tex = (folder / f"{kl.key}.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex and "\\label{tab:m__d__kl_next_token}" in tex
    assert "$\\times 10^{-3}$" in tex and "e-0" not in tex
    header, rows = read_latex_rows(tex)
    shown = display_main(kl)
    assert header == ["spec", *kl.budgets]
    assert rows == [[h, *(c.text + (f" (n={c.n})" if c.mark_n else "") for c in cs)] for h, cs in shown.rows]
    parsed = {r[0]: r[1:] for r in rows}
    mean, low, high = (float(x) for x in re.match(r"([\d.]+) \[([\d.]+), ([\d.]+)\]", parsed["my_spec"][0]).groups())
    est = kl.cells[("my_spec", "keep=4")].estimate
    assert mean * 1e-3 == pytest.approx(est.mean, rel=5e-3) and low * 1e-3 == pytest.approx(est.low, rel=5e-3)
    assert high * 1e-3 == pytest.approx(est.high, rel=5e-3)
    assert parsed["my_spec"][0].endswith("(n=5)") and not parsed["fastv"][0].endswith(")")  # n marked where it differs

    # Markdown: the same table
    md = (folder / f"{kl.key}.md").read_text()
    assert "| my_spec" in md and parsed["fastv"][0] in md and "n = 6 per cell unless marked" in md
    pmd = (folder / "m__d__first_token_agreement__paired.md").read_text()
    assert "| McNemar (1/4) | 0.375 | 0.375      | n.s." in pmd
    ptex = (folder / f"{kl.key}__paired.tex").read_text()
    assert "my\\_spec" in ptex and "Wilcoxon" in ptex and "spec minus fastv" in ptex


def test_markdown_keeps_significant_zeros():
    table = DisplayTable("caption", ["p", "mean"], [("fastv", ["1.000", "0.500"])], NumberFormat())
    assert "| fastv  | 1.000 | 0.500  |" in to_markdown(table)  # not re-parsed into 1 and 0.5

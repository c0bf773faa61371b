"""Report: per-metric tables (specs x budgets) with intervals over samples, figures, one self-contained HTML."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tokcompress.cli import main
from tokcompress.study.db import ResultsDB
from tokcompress.study.report import MetricTable, budget_order, build_tables, write_report
from tokcompress.study.stats import mean_ci


def make_db(path, values):
    """values: {(spec, budget): [per-sample metric values]}; seeds 0 and 1 hold v-0.1 and v+0.1."""
    with ResultsDB(path) as db:
        for (spec, budget), per_sample in values.items():
            kept = 16 if budget == "all" else int(budget.split("=")[1]) if budget.startswith("keep") else 8
            for i, v in enumerate(per_sample):
                for seed, delta in ((0, -0.1), (1, 0.1)):
                    db.insert({"model": "m", "dataset": "d", "sample": f"s{i}", "spec_hash": spec, "budget": budget,
                               "seed": seed, "config_hash": "c", "spec": spec, "suite": "unit",
                               "metrics": {"acc": v + delta, "kl": None if spec == "unpruned" else 0.5},
                               "output": {"visual_after": kept}, "versions": {"torch": "x"}, "machine": {"host": "h"},
                               "created": "t"})


VALUES = {
    ("unpruned", "all"): [1.0, 1.0, 1.0],
    ("fastv", "keep=4"): [0.2, 0.4, 0.9],
    ("fastv", "keep=8"): [0.5, 0.6, 1.0],
    ("random", "keep=4"): [0.1, 0.1, 0.1],
    ("fastv", "ratio=0.25"): [0.3, 0.3, 0.6],
}


def test_mean_ci_is_deterministic_and_brackets_the_mean():
    est = mean_ci([0.0, 1.0, 1.0, 0.0, 1.0])
    assert est.mean == pytest.approx(0.6) and est.low <= est.mean <= est.high and est.n == 5
    assert mean_ci([0.0, 1.0, 1.0, 0.0, 1.0]) == est
    assert mean_ci([3.0]).format() == "3 (n=1)"
    assert (mean_ci([2.0, 2.0]).low, mean_ci([2.0, 2.0]).high) == (2.0, 2.0)
    wide, narrow = mean_ci(np.linspace(0, 1, 10)), mean_ci(np.linspace(0.4, 0.6, 10))
    assert wide.high - wide.low > narrow.high - narrow.low


def test_tables_average_seeds_per_sample_then_bootstrap_over_samples(tmp_path):
    make_db(tmp_path / "r.sqlite", VALUES)
    with ResultsDB(tmp_path / "r.sqlite") as db:
        tables = build_tables(db.rows())
    acc = next(t for t in tables if t.metric == "acc")
    assert acc.specs == ["unpruned", "fastv", "random"]
    assert acc.budgets == ["keep=4", "keep=8", "ratio=0.25", "all"]
    cell = acc.cells[("fastv", "keep=4")]
    assert cell.estimate.mean == pytest.approx(0.5) and cell.estimate.n == 3  # seeds' +-0.1 cancel per sample
    assert cell.estimate == mean_ci([0.2, 0.4, 0.9])
    assert cell.retained == 4
    assert ("random", "keep=8") not in acc.cells
    kl = next(t for t in tables if t.metric == "kl")
    assert ("unpruned", "all") not in kl.cells  # null values are skipped, not zeros
    assert sorted(["all", "ratio=0.5", "keep=64", "keep=8"], key=budget_order) == ["keep=8", "keep=64", "ratio=0.5", "all"]


def test_report_files_plots_and_self_contained_html(tmp_path):
    make_db(tmp_path / "r.sqlite", VALUES)
    files = write_report(tmp_path / "r.sqlite", tmp_path / "out", quiet=True)
    # kl is 0.5 on every pruned row: a constant metric is skipped with the reason, not drawn
    assert sorted(p.name for p in files.plots) == ["m__d__acc.png"]
    for p in files.plots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = files.html.read_text()
    assert page.count("data:image/png;base64,") == 1
    assert "Figure skipped: constant: every value is 0.500." in page
    assert not re.search(r"""(src|href)=['"](?!data:)""", page)  # nothing external
    assert "<th>fastv</th>" in page and "keep=4" in page
    summary = json.loads(files.summary.read_text())
    cells = {(c["spec"], c["budget"]): c for t in summary["tables"] if t["metric"] == "acc" for c in t["cells"]}
    assert cells[("fastv", "keep=8")]["mean"] == pytest.approx(0.7)
    assert summary["provenance"]["versions"] == [{"torch": "x"}]


def test_report_cli(tmp_path, capsys):
    make_db(tmp_path / "results.sqlite", VALUES)
    assert main(["report", str(tmp_path), "--metric", "acc", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "acc - m on d" in out and "fastv" in out and "0.500 [" in out
    assert (tmp_path / "report" / "report.html").is_file() and not (tmp_path / "report" / "plots").exists()
    assert main(["report", str(tmp_path), "--metric", "nosuch"]) == 2
    assert "no recorded values for metric(s) ['nosuch']" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.sqlite")]) == 2


def test_report_shows_the_latest_settings_only(tmp_path):
    make_db(tmp_path / "r.sqlite", VALUES)
    with ResultsDB(tmp_path / "r.sqlite") as db:  # the same rows again, recorded later with other settings
        for r in db.rows():
            db.insert({**r, "config_hash": "new", "metrics": {"acc": 0.0}})
    files = write_report(tmp_path / "r.sqlite", tmp_path / "out", quiet=True, plots=False)
    acc = next(t for t in files.tables if t.metric == "acc")
    assert all(c.estimate.mean == 0.0 for c in acc.cells.values())
    assert "30 older rows recorded with other settings or an earlier definition" in files.html.read_text()


def test_report_shows_the_latest_definition_of_a_spec_only(tmp_path):
    make_db(tmp_path / "r.sqlite", VALUES)
    with ResultsDB(tmp_path / "r.sqlite") as db:  # fastv redefined under the same label, rerun on half the samples
        fastv = [r for r in db.rows() if r["spec"] == "fastv"]
        samples = sorted({r["sample"] for r in fastv})[: len({r["sample"] for r in fastv}) // 2]
        rerun = [r for r in fastv if r["sample"] in samples]
        for r in rerun:
            db.insert({**r, "spec_hash": "redefined", "metrics": {"acc": 1.0}})
    files = write_report(tmp_path / "r.sqlite", tmp_path / "out", quiet=True, plots=False)
    acc = next(t for t in files.tables if t.metric == "acc")
    cells = [c.estimate for k, c in acc.cells.items() if k[0] == "fastv"]
    assert cells and all(e.mean == 1.0 for e in cells)  # only the new definition's rows, each sample once
    assert sum(e.n for e in cells) == len({(r["budget"], r["sample"]) for r in rerun})  # seeds averaged per sample
    assert f"{len(fastv)} older rows recorded with other settings or an earlier definition" in files.html.read_text()


def test_print_tables_keeps_its_call_form(tmp_path):
    """``print_tables(tables, console)`` as callers (the grounding demo) use it; paired tables are optional."""
    from io import StringIO

    from rich.console import Console

    from tokcompress.study.metricinfo import metric_info
    from tokcompress.study.paired import build_paired
    from tokcompress.study.report import print_tables

    make_db(tmp_path / "r.sqlite", VALUES)
    with ResultsDB(tmp_path / "r.sqlite") as db:
        tables = build_tables(db.rows(), ["acc"])
    out = StringIO()
    print_tables(tables, Console(file=out, width=120))
    assert "acc - m on d" in out.getvalue() and "difference from" not in out.getvalue()
    print_tables(tables, Console(file=out, width=120), build_paired(tables))
    assert "difference from fastv - acc" in out.getvalue()
    kl = MetricTable("m", "d", "kl_next_token", [], [], info=metric_info("kl_next_token"))
    assert kl.title == "Next-token KL divergence (kl_next_token) - m on d"  # the id too, as the CSV names it

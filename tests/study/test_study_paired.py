"""Paired tables on fabricated databases: a known effect is found, no effect is not, Holm is applied."""

from __future__ import annotations

import json

import numpy as np
import pytest

from report_db import write_db
from tokcompress.cli import main
from tokcompress.study.db import ResultsDB
from tokcompress.study.paired import build_paired
from tokcompress.study.report import build_tables, write_report
from tokcompress.study.stats import holm

N = 40
BASE_ACC = [1.0] * 12 + [0.0] * 28  # baseline right on 12 of 40
BETTER_ACC = [1.0] * 36 + [0.0] * 4  # right on those 12 and 24 more: 24 discordant pairs, all one way
SAME_ACC = [1.0] * 10 + [0.0, 0.0] + [1.0, 1.0] + [0.0] * 26  # 12 right: 2 discordant each way
KL = np.round(np.random.default_rng(5).lognormal(-3, 1, N), 6).tolist()
SIGNS = [1 if i % 2 else -1 for i in range(N)]


def db(tmp_path):
    values = {
        ("unpruned", "all"): {"first_token_agreement": [1.0] * N, "kl_next_token": [0.0] * N},
        ("base", "keep=8"): {"first_token_agreement": BASE_ACC, "kl_next_token": KL},
        ("better", "keep=8"): {"first_token_agreement": BETTER_ACC, "kl_next_token": [v / 2 for v in KL]},
        ("same", "keep=8"): {"first_token_agreement": SAME_ACC,
                             "kl_next_token": [v + 1e-4 * s for v, s in zip(KL, SIGNS)]},
    }
    return write_db(tmp_path / "r.sqlite", values, kept={"keep=8": 8, "all": 16})


def rows_by_spec(paired, metric):
    (table,) = [p for p in paired if p.table.metric == metric]
    return table, {r.spec: r for r in table.rows}


def test_known_effect_is_detected_and_no_effect_is_not(tmp_path):
    with ResultsDB(db(tmp_path)) as results:
        tables = build_tables(results.rows())
    paired = build_paired(tables)
    acc, rows = rows_by_spec(paired, "first_token_agreement")
    assert acc.baseline == "base"  # the first pruned spec
    better, same = rows["better"].result, rows["same"].result
    assert (better.n, better.difference, better.a_only, better.b_only) == (N, 0.6, 24, 0)
    assert better.test == "mcnemar-exact" and better.p == pytest.approx(2 * 0.5 ** 24)
    assert better.low > 0.3 and rows["better"].verdict(acc.alpha, True) == "better"
    assert (same.difference, same.a_only, same.b_only, same.p) == (0.0, 2, 2, 1.0)
    assert same.low < 0 < same.high and rows["same"].verdict(acc.alpha, True) == "n.s."
    assert [r.p_holm for r in acc.rows] == pytest.approx(holm([r.result.p for r in acc.rows]))

    kl, rows = rows_by_spec(paired, "kl_next_token")
    assert rows["better"].result.test == "wilcoxon" and rows["better"].result.p < 1e-6
    assert rows["better"].result.difference == pytest.approx(-np.mean(KL) / 2)
    assert rows["better"].result.high < 0 and rows["better"].verdict(kl.alpha, False) == "better"
    assert rows["same"].result.p > 0.5 and rows["same"].verdict(kl.alpha, False) == "n.s."
    assert "unpruned" not in rows  # a pruned baseline has no "all" budget to pair the reference with


def test_baseline_choice_and_errors(tmp_path):
    with ResultsDB(db(tmp_path)) as results:
        tables = build_tables(results.rows(), metrics=["first_token_agreement"])
    (p,) = build_paired(tables, baseline="unpruned")
    assert {r.spec for r in p.rows} == {"base", "better", "same"} and {r.baseline_budget for r in p.rows} == {"all"}
    assert {r.spec: r.result.difference for r in p.rows}["better"] == pytest.approx(-0.1)
    (p,) = build_paired(tables, baseline="better")
    assert p.baseline == "better" and {r.spec for r in p.rows} == {"base", "same"}
    with pytest.raises(ValueError, match="unknown baseline spec 'bettr'. Did you mean 'better'?"):
        build_paired(tables, baseline="bettr")


def test_pairs_only_shared_samples(tmp_path):
    values = {("a", "keep=4"): {"kl_next_token": [0.1, 0.2, 0.3, 0.4]},
              ("b", "keep=4"): {"kl_next_token": [0.2, 0.3, None, 0.6]}}  # sample 2 missing for b
    with ResultsDB(write_db(tmp_path / "r.sqlite", values)) as results:
        (p,) = build_paired(build_tables(results.rows()))
    (row,) = p.rows
    assert row.result.n == 3 and row.result.difference == pytest.approx(np.mean([0.1, 0.1, 0.2]))


def test_report_writes_the_paired_table_deterministically(tmp_path, capsys):
    path = db(tmp_path)
    first = write_report(path, tmp_path / "one", quiet=True, plots=False, resamples=500)
    second = write_report(path, tmp_path / "two", quiet=True, plots=False, resamples=500)
    one, two = (json.loads(f.summary.read_text()) for f in (first, second))
    assert one["paired"] == two["paired"] and one["tables"] == two["tables"]
    page = first.html.read_text()
    assert "spec minus base on shared samples" in page and "McNemar (24/0)" in page and ">better<" in page
    assert main(["report", str(path), "--no-plots", "--baseline", "nosuch", "-o", str(tmp_path / "x")]) == 2
    assert "unknown baseline spec 'nosuch'" in capsys.readouterr().err
    assert main(["report", str(path), "--no-plots", "--baseline", "unpruned", "-o", str(tmp_path / "u")]) == 0
    assert "difference from unpruned" in capsys.readouterr().out

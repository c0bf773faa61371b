"""Runner and database: the cross product, one row per key, resume after an interruption."""

from __future__ import annotations

import sqlite3
from collections import Counter

import pytest

from tokcompress.study.db import ResultsDB
from tokcompress.study.plan import build_plan
from tokcompress.study.runner import RunError, run_suite
from tokcompress.study.suite import load_suite


def test_plan_is_the_full_cross_product(suite_file):
    loaded = load_suite(suite_file(seeds=[0, 1], specs=["divprune", "random"],
                                   placements=[{"placement": "pre_llm"}, {"placement": "layer", "layer": 3}]))
    plan = build_plan(loaded)
    # 1 model x 3 samples x (unpruned + 2 specs x 2 placements x 2 budgets x 2 seeds)
    assert len(plan.tasks) == 3 * (1 + 2 * 2 * 2 * 2)
    assert len({t.key for t in plan.tasks}) == len(plan.tasks)
    labels = Counter(t.variant.label for t in plan.tasks)
    assert labels == {"unpruned": 3, "divprune@pre_llm": 12, "divprune@layer3": 12, "random@pre_llm": 12, "random@layer3": 12}
    at3 = next(t.variant for t in plan.tasks if t.variant.label == "divprune@layer3")
    assert at3.spec["apply"] == {"placement": "layer", "layer": 3, "features": "hidden", "positions": "original"}
    pre = next(t.variant for t in plan.tasks if t.variant.label == "divprune@pre_llm")
    assert pre.spec["apply"]["positions"] == "contiguous", "an override of the same placement keeps the spec's other fields"
    # the seed reaches the random selector's own seed parameter, and so the spec hash
    seeds = {t.variant.seed: t.variant for t in plan.tasks if t.variant.label == "random@pre_llm" and t.variant.budget == "keep=4"}
    assert seeds[0].spec["selector"]["seed"] == 0 and seeds[1].spec["selector"]["seed"] == 1
    assert seeds[0].spec_hash != seeds[1].spec_hash


def test_run_records_every_row_once_with_provenance(tmp_path, suite_file, fake_worker):
    loaded = load_suite(suite_file())
    with ResultsDB(tmp_path / "r.sqlite") as db:
        summary = run_suite(loaded, db, make_worker=fake_worker, progress=False)
        assert summary.complete and summary.written == 3 * (1 + 2 * 2) == db.count()
        row = db.rows({"spec": "fastv", "budget": "keep=4"})[0]
        assert row["spec_json"]["scorer"] == {"name": "attention"}
        assert row["versions"] == {"fake": "1"} and row["machine"]["host"] == "test"
        assert set(row["metrics"]) == {"first_token_agreement", "kl_next_token", "kept_tokens"}
        # a second run computes nothing
        again = run_suite(loaded, db, make_worker=fake_worker, progress=False)
        assert again.written == 0 and again.skipped == again.total == 15
    assert len(fake_worker.calls) == 15


def test_interrupted_run_resumes_without_losing_or_duplicating(tmp_path, suite_file, fake_worker):
    loaded = load_suite(suite_file())
    path = tmp_path / "r.sqlite"
    with ResultsDB(path) as db:
        with pytest.raises(KeyboardInterrupt):
            run_suite(loaded, db, make_worker=lambda c: fake_worker(c, interrupt_after=6), progress=False)
        assert db.count() == 6  # every row computed before the interruption was committed
    first = list(fake_worker.calls)
    with ResultsDB(path) as db:
        summary = run_suite(loaded, db, make_worker=fake_worker, progress=False)
        assert (summary.skipped, summary.written) == (6, 9)
        keys = [tuple(r[k] for k in ("model", "sample", "spec_hash", "budget", "seed")) for r in db.rows()]
    assert len(keys) == len(set(keys)) == 15
    # the rerun evaluated exactly the rows the first run had not
    assert not set(first) & set(fake_worker.calls[6:]) and len(fake_worker.calls) == 15
    # and the final rows equal an uninterrupted run's
    fake_worker.calls = []
    with ResultsDB(tmp_path / "clean.sqlite") as clean:
        run_suite(loaded, clean, make_worker=fake_worker, progress=False)
        expected = {(r["sample"], r["spec"], r["budget"]): r["metrics"] for r in clean.rows()}
    with ResultsDB(path) as db:
        assert {(r["sample"], r["spec"], r["budget"]): r["metrics"] for r in db.rows()} == expected


def test_unique_key_refuses_a_duplicate_insert(tmp_path):
    with ResultsDB(tmp_path / "r.sqlite") as db:
        row = {"model": "m", "dataset": "d", "sample": "s", "spec_hash": "h", "budget": "keep=1", "seed": 0,
               "config_hash": "c", "spec": "x", "metrics": {"a": 1.0}, "output": {}, "versions": {}, "machine": {},
               "created": "now"}
        assert db.insert(row) is True
        assert db.insert({**row, "metrics": {"a": 2.0}}) is False
        assert [r["metrics"] for r in db.rows()] == [{"a": 1.0}]
    with pytest.raises(sqlite3.IntegrityError):  # the constraint lives in the file, not only in our code
        conn = sqlite3.connect(tmp_path / "r.sqlite")
        cols = ", ".join(row)
        conn.execute(f"INSERT INTO results ({cols}) VALUES ({', '.join('?' * len(row))})",
                     [str(v) if isinstance(v, dict) else v for v in row.values()])


def test_a_failing_row_stops_the_run_unless_keep_going(tmp_path, suite_file, fake_worker):
    loaded = load_suite(suite_file())
    with ResultsDB(tmp_path / "r.sqlite") as db:
        with pytest.raises(RunError, match="(?s)spec 'random'.*cannot run random"):
            run_suite(loaded, db, make_worker=lambda c: fake_worker(c, fail_on="random"), progress=False)
        assert db.count() == 3  # unpruned, fastv x 2 budgets of the first sample
        summary = run_suite(loaded, db, make_worker=lambda c: fake_worker(c, fail_on="random"), keep_going=True,
                            progress=False)
        assert len(summary.failed) == 6 and not summary.complete
        assert db.count() == 9
        # failed rows are not recorded, so a later run retries them
        summary = run_suite(loaded, db, make_worker=fake_worker, progress=False)
        assert summary.written == 6 and db.count() == 15


def test_changing_generation_settings_records_new_rows(tmp_path, suite_file, fake_worker):
    with ResultsDB(tmp_path / "r.sqlite") as db:
        run_suite(load_suite(suite_file()), db, make_worker=fake_worker, progress=False)
        summary = run_suite(load_suite(suite_file(generation={"max_new_tokens": 3})), db, make_worker=fake_worker,
                            progress=False)
        assert summary.skipped == 0 and db.count() == 30


def test_a_model_that_fails_to_load_fails_its_rows(tmp_path, suite_file):
    missing = tmp_path / "gone"
    missing.mkdir()
    loaded = load_suite(suite_file(models=[{"source": str(missing)}]))  # a folder at load time, deleted before the run
    missing.rmdir()
    with ResultsDB(tmp_path / "r.sqlite") as db:
        with pytest.raises(RunError, match="loading the model failed: InputError: model .*gone' is neither a local checkpoint"):
            run_suite(loaded, db, progress=False)
        summary = run_suite(loaded, db, progress=False, keep_going=True)
        assert len(summary.failed) == summary.total == 15 and db.count() == 0

"""``--backend ray`` on a local Ray instance: one worker process per model, rows written by the driver."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from study_fakes import FakeWorker
from tokcompress.study.db import ResultsDB
from tokcompress.study.ray_backend import RayExecutor
from tokcompress.study.runner import run_suite
from tokcompress.study.suite import load_suite

ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_ray_backend_resumes_a_local_run_one_worker_per_model(tmp_path, suite_file, fake_worker):
    loaded = load_suite(suite_file(models=["tiny-llava", {"source": "tiny-llava", "label": "second"}]))
    run_dir = tmp_path / "run"
    db_path = run_dir / "results.sqlite"
    with ResultsDB(db_path) as db:  # a local run stopped after 6 rows
        with pytest.raises(KeyboardInterrupt):
            run_suite(loaded, db, make_worker=lambda c: fake_worker(c, interrupt_after=6), progress=False)
    executor = RayExecutor(run_dir / "ray", num_cpus=2,
                           runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}})
    with ResultsDB(db_path) as db:
        summary = run_suite(loaded, db, executor=executor, make_worker=FakeWorker, progress=False)
        rows = db.rows()
    assert summary.complete and (summary.skipped, summary.written) == (6, 24)
    assert len(rows) == len({(r["model"], r["sample"], r["spec_hash"], r["budget"]) for r in rows}) == 30
    # every row the Ray run wrote came from one worker process per model, none of them the driver
    pids = {}
    for r in rows[6:]:
        pids.setdefault(r["model"], set()).add(r["machine"]["pid"])
    assert all(len(p) == 1 for p in pids.values()) and len(set.union(*pids.values())) == 2
    assert os.getpid() not in set.union(*pids.values())
    assert sorted(executor.worker_pids) == sorted(set.union(*pids.values()))
    # same values as the local worker computes
    fake_worker.calls = []
    with ResultsDB(tmp_path / "local.sqlite") as db:
        run_suite(loaded, db, make_worker=FakeWorker, progress=False)
        local = {(r["model"], r["sample"], r["spec"], r["budget"]): r["metrics"] for r in db.rows()}
    assert {(r["model"], r["sample"], r["spec"], r["budget"]): r["metrics"] for r in rows} == local
    # Ray's session files live in the run folder, and the local instance is shut down afterwards
    assert list((run_dir / "ray").glob("session_*"))
    assert not ray.is_initialized()

"""End to end on a tiny LLaVA: `tokcompress ablate` killed half-way with SIGKILL, rerun, same rows, none twice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tokcompress.cli import main
from tokcompress.study.db import ResultsDB

DETERMINISTIC = ("first_token_agreement", "sequence_agreement", "kl_next_token", "kept_tokens", "flops_ratio")

SUITE = {
    "name": "kill-test",
    "models": ["tiny-llava"],  # 56 px, 16 visual tokens
    "dataset": {"name": "samples", "limit": 2},
    "specs": ["fastv", "random"],
    "budgets": [4, 0.5],
    "metrics": [*DETERMINISTIC, "prefill_ms", "pace"],
    "generation": {"max_new_tokens": 4},
    "timing": {"warmup": 0},
}
ROWS = 2 * (1 + 2 * 2)

# A third-party metric that takes 0.15 s per row, so the run is reliably still going when it is killed.
PACE_PLUGIN = """
    import time
    from tokcompress.hookspecs import hookimpl
    from tokcompress.study.metrics import Metric

    class Pace(Metric):
        name = "pace"
        def compute(self, run, reference, sample):
            time.sleep(0.15)
            return 1.0

    @hookimpl
    def tokcompress_register_metrics():
        return [Pace]
"""


def count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0


def table(db: Path) -> dict[tuple, dict]:
    with ResultsDB(db) as results:
        rows = results.rows()
    keys = [(r["model"], r["sample"], r["spec_hash"], r["budget"], r["seed"], r["config_hash"]) for r in rows]
    assert len(keys) == len(set(keys)), "a row was recorded twice"
    return {(r["sample"], r["spec"], r["budget"]): {m: r["metrics"][m] for m in DETERMINISTIC} for r in rows}


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_rows(tmp_path, capsys, install_plugin):
    plugin_root = install_plugin("tc-pace", "tc_pace", PACE_PLUGIN)
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    run_dir = tmp_path / "run"
    db = run_dir / "results.sqlite"
    cmd = [sys.executable, "-m", "tokcompress.cli", "ablate", str(suite), "--run-dir", str(run_dir), "--no-report",
           "--no-progress", "--threads", "1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(plugin_root), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 240
    while count(db) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be killed:\n{proc.stdout.read().decode()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = count(db)
    assert 4 <= killed_at < ROWS

    assert main(["ablate", str(suite), "--run-dir", str(run_dir), "--no-report", "--no-progress"]) == 0
    out = capsys.readouterr().err
    assert f"{ROWS - killed_at} row(s) written, {killed_at} already recorded, 0 failed" in " ".join(out.split())
    resumed = table(db)
    assert len(resumed) == ROWS

    # an uninterrupted run of the same suite records the same rows and values
    assert main(["ablate", str(suite), "--run-dir", str(tmp_path / "clean"), "--no-progress"]) == 0
    clean = table(tmp_path / "clean" / "results.sqlite")
    assert resumed.keys() == clean.keys()
    for key, metrics in clean.items():
        assert resumed[key] == pytest.approx(metrics, rel=1e-5, abs=1e-7), key
    # sanity of the values themselves: the reference agrees with itself, pruned rows keep what the budget says
    assert clean[("shape-circle", "unpruned", "all")] == {"first_token_agreement": 1.0, "sequence_agreement": 1.0,
                                                          "kl_next_token": 0.0, "kept_tokens": 16.0, "flops_ratio": 1.0}
    assert {m["kept_tokens"] for (s, spec, b), m in clean.items() if b == "keep=4"} == {4.0}
    assert {m["kept_tokens"] for (s, spec, b), m in clean.items() if b == "ratio=0.5"} == {8.0}
    assert all(m["flops_ratio"] < 1 for (s, spec, b), m in clean.items() if spec != "unpruned")
    # and the report the clean run wrote: a figure per metric unless it would show nothing, and why
    report = tmp_path / "clean" / "report"
    summary = json.loads((report / "summary.json").read_text())
    figures = {f["metrics"][0]: f for f in summary["figures"] if f["kind"] == "metric"}
    assert set(figures) == set(SUITE["metrics"])
    assert figures["kept_tokens"]["skipped"] == "equals the x axis (retained visual tokens)"
    assert figures["pace"]["skipped"] == "constant: every value is 1.00"
    written = [f for f in summary["figures"] if not f["skipped"]]
    assert (report / "report.html").is_file() and len(list((report / "plots").glob("*.png"))) == len(written) >= 2
    assert (report / "tables" / "main.csv").is_file() and (report / "tables" / "paired.csv").is_file()


def test_ablate_dry_run_and_bad_suite(tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({**SUITE, "metrics": list(DETERMINISTIC)}))
    assert main(["ablate", str(suite), "--dry-run"]) == 0
    assert f"= {ROWS} rows" in " ".join(capsys.readouterr().err.split())
    suite.write_text(yaml.safe_dump({**SUITE, "metrics": list(DETERMINISTIC), "budgets": [0]}))
    assert main(["ablate", str(suite), "--dry-run"]) == 2
    assert "field 'budgets.0.keep'" in capsys.readouterr().err

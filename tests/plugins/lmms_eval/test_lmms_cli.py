"""The documented command line, offline: ``lmms-eval --model tokcompress ... --include_path "$(tokcompress-lmms-eval tasks)"``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lmms_eval", reason="lmms-eval is not installed; `make test` installs it (Makefile target 'lmms')")
pytest.importorskip("tokcompress_lmms_eval", reason="the plugin is not installed: pip install --no-deps -e plugins/lmms_eval")
pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def test_cli_runs_the_grounding_task_and_writes_costs(tmp_path):
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "datasets"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    folder = subprocess.run([str(BIN / "tokcompress-lmms-eval"), "tasks"], env=env, capture_output=True, text=True,
                            check=True).stdout.strip()
    assert Path(folder, "tokcompress_grounding.yaml").is_file() and folder.startswith(str(tmp_path / "cache"))
    cmd = [str(BIN / "lmms-eval"), "--model", "tokcompress", "--model_args", "pretrained=grounding,pruner=d2pruner,keep=28",
           "--tasks", "tokcompress_grounding", "--include_path", folder, "--limit", "12", "--batch_size", "4",
           "--output_path", str(tmp_path / "out"), "--log_samples", "--verbosity", "WARNING"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (results_file,) = (tmp_path / "out").rglob("*_results.json")
    (samples_file,) = (tmp_path / "out").rglob("*_samples_tokcompress_grounding.jsonl")
    results = json.loads(results_file.read_text())
    assert 0 <= results["results"]["tokcompress_grounding"]["accuracy,none"] <= 1
    assert results["throughput"]["avg_tokcompress_visual_tokens_after"] == 28
    assert results["throughput"]["avg_tokcompress_visual_tokens_before"] == 256
    logged = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert len(logged) == 12
    assert all(s["token_counts"][0]["visual_tokens_after"] == 28 and s["token_counts"][0]["batch_size"] == 4 for s in logged)
    assert "avg_tokcompress_flops_ratio" in done.stdout  # lmms-eval prints the throughput table

"""The checkpoint path (AutoProcessor + AutoModelForImageTextToText from a folder), end to end on a saved tiny LLaVA."""

from __future__ import annotations

import pytest

from study_fakes import write_tiny_checkpoint
from tokcompress_d2pruner.calibrate import CalibrationSettings, calibrate, list_images
from tokcompress.study.datasets import BUNDLED_JSONL
from tokcompress.study.db import ResultsDB
from tokcompress.study.runner import run_suite
from tokcompress.study.suite import ModelEntry, load_suite


@pytest.mark.slow
def test_suite_and_calibration_on_a_checkpoint_folder(tmp_path, suite_file):
    ckpt = write_tiny_checkpoint(tmp_path / "tiny-llava-hf")
    loaded = load_suite(suite_file(models=[{"source": str(ckpt), "device": "cpu"}], dataset={"name": "samples", "limit": 1},
                                   specs=["fastv"], budgets=[4],
                                   metrics=["first_token_agreement", "kl_next_token", "kept_tokens", "flops_ratio",
                                            "exact_match"]))
    with ResultsDB(tmp_path / "r.sqlite") as db:
        summary = run_suite(loaded, db, progress=False)
        rows = {(r["sample"], r["spec"]): r for r in db.rows()}
    assert summary.complete and len(rows) == 2
    ref = rows[("shape-circle", "unpruned")]
    assert ref["model"] == "tiny-llava-hf"
    assert ref["metrics"]["first_token_agreement"] == 1.0 and ref["metrics"]["kl_next_token"] == 0.0
    assert ref["output"]["visual_before"] == 16
    pruned = rows[("shape-circle", "fastv")]
    assert pruned["metrics"]["kept_tokens"] == 4 and pruned["metrics"]["flops_ratio"] < 1
    assert pruned["metrics"]["exact_match"] in (0.0, 1.0)
    assert "transformers" in pruned["versions"] and pruned["machine"]["cpu_count"] >= 1

    images = list_images(BUNDLED_JSONL.parent / "samples", 1, 0)
    result = calibrate(CalibrationSettings(ModelEntry(source=str(ckpt), device="cpu"), layer=1), images,
                       tmp_path / "profile", progress=False, heatmap=False)
    assert result.images == 1 and tuple(result.maps["image"].shape) == (4, 4)
    assert float(result.maps["image"].sum()) < 1  # attention to the image is part of one softmax row

"""The offline ``tokcompress_grounding`` task through lmms-eval on the shipped model, against `tokcompress ablate`.

Both run the 200 committed test questions unpruned and with D2Pruner keeping 28 of 256 visual tokens;
every answer, and so every accuracy, must be the same, and lmms-eval's log must say 28 tokens were kept.
"""

from __future__ import annotations

import statistics

import pytest
from lmms_support import evaluate, make_model, samples

from tokcompress.cli import main as tokcompress_main
from tokcompress.study.db import ResultsDB
from tokcompress_lmms_eval.tasks import TASK, write_tasks

pytestmark = pytest.mark.slow
N = 200
SUITE = """\
name: lmms-eval-parity
models:
  - {source: grounding, dtype: float32, device: cpu, threads: 1}
dataset: grounding-test
specs: [d2pruner]
budgets: [28]
metrics: [grounding_acc, exact_match, kept_tokens]
generation: {max_new_tokens: 6}
timing: {repeats: 1, warmup: 0}
"""


@pytest.fixture(scope="module")
def ablate(tmp_path_factory):
    """``{"unpruned" | "d2pruner": {sample id: row}}`` from a real `tokcompress ablate` run."""
    run = tmp_path_factory.mktemp("ablate")
    (run / "suite.yaml").write_text(SUITE)
    assert tokcompress_main(["ablate", str(run / "suite.yaml"), "--run-dir", str(run), "--no-report", "--no-progress"]) == 0
    with ResultsDB(run / "results.sqlite") as db:
        rows = db.rows()
    out: dict[str, dict[str, dict]] = {}
    for row in rows:
        out.setdefault(row["spec"], {})[row["sample"]] = row
    return out


@pytest.fixture(scope="module")
def lmms(tmp_path_factory):
    """``{"unpruned" | "d2pruner": results}`` of lmms-eval (chat requests, lmms-eval's default for the model)."""
    tasks = write_tasks(tmp_path_factory.mktemp("tasks"))
    return {"unpruned": evaluate(make_model("pretrained=grounding,pruner=none"), TASK, tasks),
            "d2pruner": evaluate(make_model("pretrained=grounding,pruner=d2pruner,keep=28"), TASK, tasks)}


@pytest.mark.parametrize("config", ["unpruned", "d2pruner"])
def test_answers_and_accuracy_equal_ablate(ablate, lmms, config):
    logged = samples(lmms[config], TASK)
    rows = ablate[config]
    assert len(logged) == len(rows) == N
    for s in logged:
        row = rows[s["doc"]["id"]]
        assert s["filtered_resps"][0] == row["output"]["text"], s["doc"]["id"]
        assert s["token_counts"][0]["visual_tokens_after"] == row["output"]["visual_after"]
    grounding = [r["metrics"]["grounding_acc"] for r in rows.values() if r["metrics"]["grounding_acc"] is not None]
    counting = [r["metrics"]["exact_match"] for r in rows.values() if r["metrics"]["exact_match"] is not None]
    result = lmms[config]["results"][TASK]
    assert result["grounding_acc,none"] == pytest.approx(statistics.fmean(grounding))
    assert result["counting_exact_match,none"] == pytest.approx(statistics.fmean(counting))
    assert result["accuracy,none"] == pytest.approx(statistics.fmean(grounding + counting))


def test_pruned_run_logs_28_kept_tokens_per_sample_and_its_costs(lmms):
    logged = samples(lmms["d2pruner"], TASK)
    counts = [s["token_counts"][0] for s in logged]
    assert {c["visual_tokens_before"] for c in counts} == {256} and {c["visual_tokens_after"] for c in counts} == {28}
    assert all(0 < c["flops_ratio"] < 0.6 and c["prefill_ms"] > 0 for c in counts)
    throughput = lmms["d2pruner"]["throughput"]
    assert throughput["avg_tokcompress_visual_tokens_after"] == 28
    assert throughput["avg_tokcompress_flops_ratio"] == pytest.approx(statistics.fmean(c["flops_ratio"] for c in counts))
    assert lmms["unpruned"]["throughput"]["avg_tokcompress_flops_ratio"] == 1.0


def test_the_model_is_accurate_and_pruning_costs_accuracy(lmms):
    """The comparison above is not between two broken runs: unpruned accuracy is the model card's."""
    unpruned, pruned = (lmms[c]["results"][TASK] for c in ("unpruned", "d2pruner"))
    assert unpruned["grounding_acc,none"] >= 0.95 and unpruned["counting_exact_match,none"] >= 0.75
    assert pruned["accuracy,none"] < unpruned["accuracy,none"]

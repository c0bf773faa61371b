"""A tiny random model of every supported family through the plugin: one sample each, pruned to 2 visual tokens."""

from __future__ import annotations

import pytest
from lmms_support import evaluate, image, make_model, samples, write_task

from tokcompress.hf.tiny import FAMILIES

TASK = "tiny_generate"


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    rows = [{"image": image("box-circle.png"), "question": "What is in the picture?", "answer": "circle"}]
    return write_task(tmp_path_factory.mktemp("generate"), TASK, rows, "generate")


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_runs_pruned(task_dir, family):
    lm = make_model(f"pretrained=tiny-{family.replace('_', '-')},pruner=d2pruner,keep=2")  # tiny InternVL has 4
    (sample,) = samples(evaluate(lm, TASK, task_dir), TASK)
    (counts,) = sample["token_counts"]
    assert isinstance(sample["filtered_resps"][0], str)
    assert counts["visual_tokens_after"] == 2 < counts["visual_tokens_before"]
    assert 0 < counts["flops_ratio"] < 1 and counts["prefill_ms"] > 0 and counts["select_ms"] > 0
    assert counts["input_tokens"] > 2 and 0 <= counts["output_tokens"] <= 4


def test_chat_and_simple_requests_give_the_same_answer(task_dir):
    """Both request shapes build the same prompt, so the same (random) model answers the same."""
    answers = {}
    for force_simple in (False, True):
        lm = make_model("pretrained=tiny-llava,pruner=fastv,keep=4", force_simple=force_simple)
        (sample,) = samples(evaluate(lm, TASK, task_dir), TASK)
        answers[force_simple] = (sample["filtered_resps"][0], sample["token_counts"][0]["visual_tokens_after"])
    assert answers[False] == answers[True] and answers[True][1] == 4

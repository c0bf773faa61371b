"""Multiple choice (lmms-eval ``loglikelihood``) on a tiny LLaVA: one forward per continuation, keep-all exact."""

from __future__ import annotations

import math

import pytest
import torch
from lmms_support import evaluate, image, make_model, samples, write_task

TASK = "tiny_choice"
ROWS = [
    {"image": image("box-circle.png"), "question": "Which shape?", "choices": ["circle", "square", "cross"], "answer": 0},
    {"image": image("box-square.png"), "question": "Which shape?", "choices": ["circle", "square", "cross"], "answer": 1},
    {"image": image("box-cross.png"), "question": "Name it.", "choices": ["a", "bb", "ccc"], "answer": 2},
]
REQUESTS = sum(len(r["choices"]) for r in ROWS)


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    return write_task(tmp_path_factory.mktemp("choice"), TASK, ROWS, "choice")


def run(task_dir, args: str):
    """Scores of every (doc, choice), the per-sample counts, and how many forwards the model ran."""
    lm = make_model(f"pretrained=tiny-llava,{args}", force_simple=True)  # lmms-eval builds choice tasks for simple models
    calls = []
    hook = lm.model.register_forward_hook(lambda *_: calls.append(1))
    try:
        results = evaluate(lm, TASK, task_dir)
    finally:
        hook.remove()
    logged = samples(results, TASK)
    scores = [tuple(r[0]) for s in logged for r in s["resps"]]
    counts = [c for s in logged for c in s["token_counts"]]
    return scores, counts, len(calls), results, lm


@pytest.fixture(scope="module")
def unpruned(task_dir):
    return run(task_dir, "pruner=none")


def test_one_forward_per_continuation_pruned_and_unpruned(task_dir, unpruned):
    pruned = run(task_dir, "pruner=d2pruner,keep=4")
    assert unpruned[2] == REQUESTS and pruned[2] == REQUESTS
    assert all(c["visual_tokens_after"] == 4 and c["visual_tokens_before"] == 16 for c in pruned[1])
    assert all(c["visual_tokens_after"] == c["visual_tokens_before"] == 16 and c["flops_ratio"] == 1.0 for c in unpruned[1])
    assert any(abs(a[0] - b[0]) > 1e-4 for a, b in zip(pruned[0], unpruned[0]))  # pruning changed the scores


def test_keep_all_equals_unpruned_exactly(task_dir, unpruned):
    kept_all = run(task_dir, "pruner=fastv,keep=10000")
    assert kept_all[0] == unpruned[0]
    assert all(c["visual_tokens_after"] == c["visual_tokens_before"] for c in kept_all[1])


def test_scores_are_the_mean_continuation_nll_and_feed_the_accuracy(unpruned):
    scores, _, _, results, lm = unpruned
    assert all(math.isfinite(nll) and nll > 0 for nll, _ in scores)
    acc = results["results"][TASK]["acc,none"]
    picks = [min(range(3), key=lambda c: scores[3 * d + c][0]) for d in range(len(ROWS))]
    assert acc == pytest.approx(sum(p == r["answer"] for p, r in zip(picks, ROWS)) / len(ROWS))
    # independent check of the first score: transformers' own loss over the continuation tokens
    from tokcompress_lmms_eval.loading import Prompt

    from PIL import Image

    with Image.open(ROWS[0]["image"]) as im:
        prompt = Prompt([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which shape?"}]}],
                        [im.convert("RGB")], key=f"{TASK}/test/0")
    inputs = lm.vlm.encode([prompt])
    cont = torch.tensor([lm.vlm.continuation_ids(" circle")])
    ids = torch.cat([inputs["input_ids"], cont], dim=1)
    labels = torch.full_like(ids, -100)
    labels[:, -cont.shape[1]:] = cont
    with torch.no_grad():
        loss = lm.model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=inputs["pixel_values"],
                        labels=labels).loss
    assert scores[0][0] == pytest.approx(float(loss), abs=1e-5)

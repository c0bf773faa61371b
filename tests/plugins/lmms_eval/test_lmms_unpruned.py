"""``pruner=none`` through the plugin gives exactly the answers of plain transformers ``generate``, batched or not."""

from __future__ import annotations

import pytest
import torch
from lmms_support import evaluate, make_model, samples

from tokcompress_grounding import TESTSET_JSONL, format_prompt, load_default_model
from tokcompress.study.datasets import read_jsonl
from tokcompress_lmms_eval.tasks import TASK, write_tasks

pytestmark = pytest.mark.slow
N = 48


def plain_answers(batch_size: int) -> list[str]:
    """Greedy answers of the shipped model through its processor and ``generate``, no tokcompress, left-padded."""
    model, processor = load_default_model()
    processor.tokenizer.padding_side = "left"
    docs = read_jsonl(TESTSET_JSONL, limit=N)
    answers = []
    for start in range(0, N, batch_size):
        chunk = docs[start:start + batch_size]
        inputs = processor(images=[d.load_image() for d in chunk], text=[format_prompt(d.prompt) for d in chunk],
                           padding=True, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
        answers += [a.strip() for a in processor.tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:],
                                                                         skip_special_tokens=True)]
    return answers


@pytest.mark.parametrize("batch_size", [1, 16])
def test_unpruned_answers_equal_plain_generate(tmp_path, batch_size):
    lm = make_model(f"pretrained=grounding,pruner=none,batch_size={batch_size}")
    logged = samples(evaluate(lm, TASK, write_tasks(tmp_path), limit=N), TASK)
    assert [s["filtered_resps"][0] for s in logged] == plain_answers(batch_size)
    assert {s["token_counts"][0]["batch_size"] for s in logged} == {batch_size}
    assert all(c["visual_tokens_after"] == c["visual_tokens_before"] == 256 for s in logged for c in s["token_counts"])

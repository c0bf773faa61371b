"""Attention supervision: the recomputed head equals the model's own attention, and the targets are the asked shape's patches."""

from __future__ import annotations

import pytest
import torch

from tokcompress_grounding.attention_target import AttentionTarget, attention_queries
from tokcompress_grounding.data import GRID
from tokcompress_grounding.model import IMAGE_TOKEN_ID, ModelSize, build_model, build_processor
from tokcompress_grounding.supervision import cell_box
from tokcompress_grounding.train import TrainConfig, batch_groups, encode_groups

TINY = ModelSize(vision_hidden=16, vision_layers=1, vision_heads=2, vision_intermediate=32,
                 text_hidden=16, text_layers=2, text_heads=4, text_kv_heads=2, text_intermediate=32)


@pytest.fixture(scope="module")
def packed():
    groups = batch_groups(TrainConfig(batch=2, grounding_per_image=2, counting_per_image=2), 3)
    return groups, encode_groups(build_processor(), groups)


def test_queries_are_the_positions_before_each_answer_token_and_keys_the_asked_shapes(packed):
    groups, batch = packed
    tokenizer = build_processor().tokenizer
    queries = attention_queries(batch, groups, IMAGE_TOKEN_ID)  # counting keys: "area"
    anchors = attention_queries(batch, groups, IMAGE_TOKEN_ID, counting_keys="anchor")
    assert len(queries["grounding"]) == len(queries["counting"]) == 4  # two of each per image
    assert anchors["grounding"] == queries["grounding"]
    counting = [q for g in groups for q in g.questions if q.task == "counting"]
    assert {len(q.about) for q in counting} != {0}  # some asked types are present
    for (row, positions, keys, weights), (_, _, akeys, aweights), question in zip(queries["counting"], anchors["counting"], counting):
        assert len(positions) == 1 and int(batch["labels"][row, positions[0] + 1]) == tokenizer.convert_tokens_to_ids(question.answer)
        first_image = int((batch["input_ids"][row] == IMAGE_TOKEN_ID).nonzero()[0, 0])
        share = 1 / (len(question.about) + 1)
        assert keys[0] == akeys[0] == 0 and weights[0] == aweights[0] == pytest.approx(share)  # BOS
        assert sum(weights) == pytest.approx(1) and sum(aweights) == pytest.approx(1)
        assert sorted(akeys[1:]) == sorted(first_image + cell_box(s)[1] * GRID + cell_box(s)[0] for s in question.about)
        assert aweights[1:] == pytest.approx([share] * len(question.about))
        for shape in question.about:  # every patch of a shape, its share split by the shape's area
            c1, r1, c2, r2 = cell_box(shape)
            patches = [first_image + r * GRID + c for r in range(r1, r2) for c in range(c1, c2)]
            assert all(weights[keys.index(p)] == pytest.approx(share / len(patches)) for p in patches)
    for (row, positions, keys, _), question in zip(queries["grounding"], [q for g in groups for q in g.questions if q.task == "grounding"]):
        assert len(positions) == 4  # x1 y1 x2 y2, not the EOS
        assert [int(batch["labels"][row, p + 1]) for p in positions] == tokenizer(question.answer, add_special_tokens=False)["input_ids"]
        c1, r1, c2, r2 = cell_box(question.about[0])
        first_image = int((batch["input_ids"][row] == IMAGE_TOKEN_ID).nonzero()[0, 0])
        assert len(keys) == (c2 - c1) * (r2 - r1) and keys[0] == first_image + r1 * GRID + c1
        assert all(int(batch["input_ids"][row, k]) == IMAGE_TOKEN_ID for k in keys)
    with pytest.raises(ValueError, match="counting_keys must be one of \\['area', 'anchor'\\], got 'centre'"):
        attention_queries(batch, groups, IMAGE_TOKEN_ID, counting_keys="centre")


def test_recomputed_attention_matches_the_eager_attention_of_the_model(packed):
    groups, batch = packed
    model = build_model(TINY, seed=0, init_std=0.3)
    model.set_attn_implementation("eager")
    target = AttentionTarget(model.model.language_model, {"grounding": [(1, 0), (1, 3)], "counting": [(0, 2)]})
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    # eager attention adds a 4-D mask to the scores, so it needs the additive form of the boolean mask
    inputs["attention_mask"] = torch.zeros(batch["attention_mask"].shape).masked_fill(~batch["attention_mask"], float("-inf"))
    out = model(**inputs, output_attentions=True)
    positions = [260, 270, int(batch["input_ids"].shape[1]) - 1]
    for layer, head in [(1, 0), (1, 3), (0, 2)]:
        for row in range(2):
            got = target.probabilities(layer, head, row, positions, batch["attention_mask"])
            torch.testing.assert_close(got, out.attentions[layer][row, head, positions], rtol=1e-5, atol=1e-6)
    queries = attention_queries(batch, groups, IMAGE_TOKEN_ID)
    (row, qpos, keys, _), (crow, cpos, ckeys, cweights) = queries["grounding"][0], queries["counting"][0]
    terms = [-torch.log(out.attentions[1][row, h, qpos][:, keys].sum(-1)) for h in (0, 3)]  # 4 positions each
    terms.append(-(torch.log(out.attentions[0][crow, 2, cpos][:, ckeys]) * torch.tensor(cweights)).sum(-1))  # 1 position
    expected = torch.cat(terms).mean()
    got = target.loss({"grounding": [queries["grounding"][0]], "counting": [queries["counting"][0]]}, batch["attention_mask"])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # every question of the batch (two rows, two questions of each task per row): the mean of all terms
    terms = [-torch.log(out.attentions[1][r, h, qp][:, k].sum(-1)) for h in (0, 3) for r, qp, k, _ in queries["grounding"]]
    terms += [-(torch.log(out.attentions[0][r, 2, qp][:, k]) * torch.tensor(w)).sum(-1) for r, qp, k, w in queries["counting"]]
    torch.testing.assert_close(target.loss(queries, batch["attention_mask"]), torch.cat(terms).mean(), rtol=1e-5, atol=1e-6)
    target.remove()
    assert not target.attn[1]._forward_pre_hooks

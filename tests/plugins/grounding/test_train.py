"""Training: schedule, packing equivalence, label masking, determinism, and exact resume from a checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from tokcompress_grounding.model import (
    EOS_ID,
    IMAGE_TOKEN_ID,
    ModelSize,
    build_model,
    build_processor,
    format_prompt,
    load_pretrained,
)
from tokcompress_grounding.train import (
    TrainConfig,
    batch_groups,
    command_line,
    encode_groups,
    learning_rate,
    parse_attention_heads,
    train,
)

TINY = ModelSize(vision_hidden=16, vision_layers=1, vision_heads=2, vision_intermediate=32,
                 text_hidden=16, text_layers=2, text_heads=2, text_kv_heads=1, text_intermediate=32)
TINY_HEADS = {"grounding_heads": "1:0", "counting_heads": "0:1,1:1"}
"""Attention supervision that fits TINY's 2 layers x 2 heads."""


@pytest.fixture(scope="module")
def processor():
    return build_processor()


def test_learning_rate_warms_up_linearly_then_decays_by_cosine_to_the_floor():
    cfg = TrainConfig(steps=110, vision_steps=0, counting_steps=0, counting_heads="", warmup=10, lr=1.0, min_lr_ratio=0.1)
    assert learning_rate(cfg, 0) == pytest.approx(0.1) and learning_rate(cfg, 9) == pytest.approx(1.0)
    assert learning_rate(cfg, 10) == pytest.approx(1.0)
    assert learning_rate(cfg, 60) == pytest.approx(0.55)  # half way: floor + (1 - floor) / 2
    assert learning_rate(cfg, 110) == pytest.approx(0.1)
    two = TrainConfig(steps=330, vision_steps=110, counting_steps=0, counting_heads="", warmup=10, lr=1.0,
                      min_lr_ratio=0.1)  # stage 2 warms up again
    assert [learning_rate(two, s) for s in (0, 60, 109)] == pytest.approx([0.1, 0.55, learning_rate(cfg, 109)])
    assert [learning_rate(two, s) for s in (110, 119, 120, 225, 330)] == pytest.approx([0.1, 1.0, 1.0, 0.55, 0.1])
    three = TrainConfig(steps=440, vision_steps=110, counting_steps=110, warmup=10, lr=1.0, min_lr_ratio=0.1)
    assert [learning_rate(three, s) for s in (110, 225, 329)] == pytest.approx([0.1, 0.55, learning_rate(two, 329)])
    assert [learning_rate(three, s) for s in (330, 339, 390, 440)] == pytest.approx([0.1, 1.0, 0.55, 0.1])  # stage 3 anew


def test_groups_are_a_pure_function_of_the_step_and_mix_tasks_and_templates():
    cfg = TrainConfig(batch=2, grounding_per_image=2, counting_per_image=1)
    a, b = batch_groups(cfg, 7), batch_groups(cfg, 7)
    assert [(g.index, g.questions, g.template) for g in a] == [(g.index, g.questions, g.template) for g in b]
    assert [g.index for g in a] == [14, 15] and {g.template for g in a} == {"chat", "plain"}
    assert [q.task for q in a[0].questions] == ["grounding", "grounding", "counting"]
    three = TrainConfig(batch=2, steps=20, vision_steps=1, grounding_per_image=2, counting_per_image=1, counting_steps=5,
                        counting_stage_grounding=1, counting_stage_counting=2)
    assert [q.task for q in batch_groups(three, 14)[0].questions] == ["grounding", "grounding", "counting"]
    assert [q.task for q in batch_groups(three, 15)[0].questions] == ["grounding", "counting", "counting"]


def test_packed_rows_hold_prefix_once_then_question_answer_eos_segments(processor):
    (group,) = batch_groups(TrainConfig(batch=1, grounding_per_image=2, counting_per_image=1), 0)
    batch = encode_groups(processor, [group])
    ids, labels, pos = batch["input_ids"][0], batch["labels"][0], batch["position_ids"][0]
    assert int((ids == IMAGE_TOKEN_ID).sum()) == 256
    labelled = labels[labels != -100].tolist()
    expected = []
    for q in group.questions:
        expected += processor.tokenizer(q.answer, add_special_tokens=False)["input_ids"] + [EOS_ID]
    assert labelled == expected
    prefix = int(torch.nonzero(ids == IMAGE_TOKEN_ID).max()) + 1
    restarts = [i for i in range(prefix, len(pos)) if pos[i] == prefix]
    assert len(restarts) == 3  # each question's positions continue from the image, as if alone
    mask = batch["attention_mask"][0, 0]
    second = restarts[1]
    assert mask[second, :prefix].all() and not mask[second, restarts[0] : second].any()


def test_packed_loss_and_logits_equal_each_question_run_alone(processor):
    model = build_model(TINY, seed=3)
    (group,) = batch_groups(TrainConfig(batch=1, grounding_per_image=2, counting_per_image=2), 5)
    batch = encode_groups(processor, [group])
    with torch.no_grad():
        packed = model(**batch)
        total, count, answer_rows = 0.0, 0, []
        for q in group.questions:
            inputs = processor(images=[group.image], text=[format_prompt(q.prompt, group.template)], return_tensors="pt")
            answer = processor.tokenizer(q.answer, add_special_tokens=False)["input_ids"] + [EOS_ID]
            ids = torch.cat([inputs["input_ids"], torch.tensor([answer])], 1)
            labels = torch.full_like(ids, -100)
            labels[0, -len(answer):] = torch.tensor(answer)
            alone = model(input_ids=ids, pixel_values=inputs["pixel_values"], labels=labels)
            total += float(alone.loss) * len(answer)
            count += len(answer)
            answer_rows.append(alone.logits[0, -len(answer) - 1 : -1])
    assert float(packed.loss) == pytest.approx(total / count, rel=1e-5)
    where = torch.nonzero(batch["labels"][0] != -100)[:, 0] - 1  # logits at t predict label t + 1
    assert torch.allclose(packed.logits[0, where], torch.cat(answer_rows), atol=1e-4)


def test_command_line_lists_only_changed_settings(tmp_path):
    assert command_line(TrainConfig(), tmp_path) == f"python -m tokcompress_grounding.train --out {tmp_path}"
    tiny = TrainConfig(steps=7, vision_steps=1, counting_steps=1, size=TINY, **TINY_HEADS)
    assert command_line(tiny, tmp_path).endswith(
        "--steps 7 --vision-steps 1 --counting-steps 1 --grounding-heads 1:0 --counting-heads 0:1,1:1 --vision-hidden 16 --vision-layers 1 --vision-heads 2 --vision-intermediate 32 --text-hidden 16 "
        "--text-layers 2 --text-heads 2 --text-kv-heads 1 --text-intermediate 32"
    )
    assert command_line(TrainConfig(grounding_heads="", counting_heads=""), tmp_path).endswith(
        "--grounding-heads '' --counting-heads ''")  # shell-quoted, so the empty list survives a copy-paste


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"counting_keys": "centre"}, "counting_keys must be one of \\['area', 'anchor'\\], got 'centre'"),
        ({"steps": 4000}, "counting_steps must be in 0 .. steps - vision_steps - 1 \\(2499: stage 2 needs a step\\), got 3000"),
        ({"counting_steps": 0}, "counting_heads '1:1' are supervised in the counting stage, which is off \\(counting_steps 0\\)"),
        ({"eval_n": 0}, "eval_n must be >= 1, got 0"),
    ],
)
def test_bad_settings_fail_when_the_config_is_built(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)


def test_attention_heads_parse_per_task_and_may_be_empty():
    assert parse_attention_heads(TrainConfig()) == {"grounding": [(1, 0), (2, 0)], "counting": [(1, 1)]}
    assert parse_attention_heads(TrainConfig(grounding_heads="", counting_heads="3:3,0:2")) == \
        {"grounding": [], "counting": [(3, 3), (0, 2)]}


@pytest.mark.slow
def test_interrupted_and_resumed_training_equals_an_uninterrupted_run(tmp_path):
    cfg = TrainConfig(steps=4, vision_steps=2, counting_steps=1, vision_batch=2, batch=1, grounding_per_image=1, counting_per_image=1,
                      warmup=1, eval_n=2, ckpt_every=100, size=TINY, **TINY_HEADS)
    straight = train(cfg, tmp_path / "a", echo=lambda _: None)
    assert train(cfg, tmp_path / "b", echo=lambda _: None, stop_after=3) is None  # stops at the end of stage 2
    assert {"optimizer.safetensors", "patch_heads.safetensors"} <= {p.name for p in (tmp_path / "b" / "checkpoint").iterdir()}
    lines = []
    resumed = train(cfg, tmp_path / "b", echo=lines.append)
    assert json.loads(lines[0]) == {"resumed_at_step": 3}
    assert not (tmp_path / "b" / "checkpoint").exists()
    a, _ = load_pretrained(tmp_path / "a")
    b, _ = load_pretrained(tmp_path / "b")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name

    def untimed(log):
        return [{k: v for k, v in e.items() if k not in ("elapsed_s", "val")} for e in log]

    assert untimed(straight["log"]) == untimed(resumed["log"])
    assert straight["log"][-1]["attention_loss"] > 0  # stage 2 supervised the heads
    assert json.loads((tmp_path / "a" / "training.json").read_text())["config"]["steps"] == 4


@pytest.mark.slow
def test_counting_heads_are_supervised_in_the_counting_stage_only(tmp_path):
    cfg = TrainConfig(steps=3, vision_steps=1, counting_steps=1, vision_batch=2, batch=1, grounding_per_image=1,
                      counting_per_image=1, counting_stage_grounding=0, counting_stage_counting=1, warmup=1, eval_n=2,
                      ckpt_every=100, size=TINY, grounding_heads="", counting_heads="1:1")
    assert train(cfg, tmp_path, echo=lambda _: None, stop_after=2) is None
    window = json.loads((tmp_path / "checkpoint" / "progress.json").read_text())["window"]
    assert [attention for _, _, attention in window] == [0.0, 0.0]  # stage 1, then stage 2: no counting head loss
    assert train(cfg, tmp_path, echo=lambda _: None)["log"][-1]["attention_loss"] > 0  # stage 3 supervises it


@pytest.mark.slow
def test_stage_one_trains_only_vision_and_projector_and_stage_two_freezes_the_vision_tower(tmp_path):
    cfg = TrainConfig(steps=3, vision_steps=1, counting_steps=1, vision_batch=2, batch=1, grounding_per_image=1, counting_per_image=1,
                      warmup=1, eval_n=2, ckpt_every=100, size=TINY, **TINY_HEADS)
    assert train(cfg, tmp_path, echo=lambda _: None, stop_after=1) is None
    from transformers import LlavaForConditionalGeneration

    after_one = LlavaForConditionalGeneration.from_pretrained(tmp_path / "checkpoint")  # weights only
    train(cfg, tmp_path, echo=lambda _: None)
    final, _ = load_pretrained(tmp_path)
    fresh = build_model(TINY, seed=0, init_std=cfg.init_std).state_dict()
    one, last = after_one.state_dict(), final.state_dict()
    vision = [k for k in one if ".vision_tower." in k]
    lm_layers = [k for k in one if ".language_model.layers." in k]
    assert vision and lm_layers
    assert any(not torch.equal(one[k], fresh[k]) for k in vision)  # stage 1 trains the vision tower ...
    assert all(torch.equal(one[k], fresh[k]) for k in lm_layers)  # ... and not the LM's layers
    assert all(torch.equal(last[k], one[k]) for k in vision)  # stage 2 leaves the vision tower frozen
    assert any(not torch.equal(last[k], one[k]) for k in lm_layers)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--vision-batch", "0"], "vision_batch must be >= 1, got 0"),
        (["--stop-after", "0"], "--stop-after must be >= 1, got 0"),
        (["--steps", "100"], "vision_steps must be in 0 .. steps - 1 (99), got 1500"),
        (["--vision-steps", "-1"], "vision_steps must be in 0 .. steps - 1 (8999), got -1"),
        (["--counting-stage-counting", "-1"], "counting_stage_counting must be >= 0, got -1"),
        (["--counting-steps", "7500"], "counting_steps must be in 0 .. steps - vision_steps - 1 (7499: stage 2 needs a step), got 7500"),
        (["--counting-steps", "0"], "counting_heads '1:1' are supervised in the counting stage, which is off"),
        (["--grounding-heads", "1:0,4:0"], "grounding_heads: '4:0' is outside the LM's 4 layers x 4 heads"),
        (["--counting-heads", "1-1"], "counting_heads: expected comma-separated layer:head pairs, got '1-1'"),
    ],
)
def test_command_line_names_bad_stage_settings(tmp_path, capsys, argv, message):
    from tokcompress_grounding.train import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "checkpoint").exists()

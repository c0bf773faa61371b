"""Tokenizer, processor and from_pretrained round trip of the grounding model (tiny sizes, random weights)."""

from __future__ import annotations

import math

import pytest
import torch

from tokcompress_grounding.data import COUNT_WORDS, make_sample
from tokcompress_grounding.model import (
    BOS_ID,
    CHAT_TEMPLATE,
    IMAGE_TOKEN_ID,
    TEMPLATES,
    UNK_ID,
    VOCAB,
    ModelSize,
    build_model,
    build_processor,
    build_tokenizer,
    format_prompt,
    load_pretrained,
    save_pretrained,
    size_of,
)

TINY = ModelSize(vision_hidden=16, vision_layers=1, vision_heads=2, vision_intermediate=32,
                 text_hidden=16, text_layers=2, text_heads=2, text_kv_heads=1, text_intermediate=32)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def test_prompt_tokenises_word_by_word(tokenizer):
    ids = tokenizer("USER: <image>\nWhere is the small red circle? ASSISTANT:")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == [
        "<s>", "user", ":", "<image>", "where", "is", "the", "small", "red", "circle", "?", "assistant", ":"
    ]
    assert ids[0] == BOS_ID and ids[3] == IMAGE_TOKEN_ID


def test_plurals_are_the_singular_token_plus_a_suffix(tokenizer):
    ids = tokenizer("How many blue squares? How many red crosses?", add_special_tokens=False)["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens == ["how", "many", "blue", "square", "s", "?", "how", "many", "red", "cross", "es", "?"]
    assert ids[3] == tokenizer.convert_tokens_to_ids("square")  # shared with "Where is the small blue square?"


def test_every_coordinate_and_count_word_is_one_token_and_decodes_back(tokenizer):
    for text in ["0 1 98 99", "12 34 56 78", *COUNT_WORDS]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == len(text.split()) and UNK_ID not in ids
        assert tokenizer.decode(ids) == text


def test_generated_questions_have_no_unknown_words(tokenizer):
    for i in range(200):
        s = make_sample(0, "train", i)
        for template in TEMPLATES:
            assert UNK_ID not in tokenizer(format_prompt(s.prompt, template))["input_ids"], s.prompt


def test_unknown_words_map_to_unk_and_format_prompt_checks_the_template(tokenizer):
    assert tokenizer("where is the zebra", add_special_tokens=False)["input_ids"][-1] == UNK_ID
    with pytest.raises(ValueError, match="template must be one of"):
        format_prompt("Where?", "alpaca")


def test_vocabulary_is_small_and_unique():
    assert len(VOCAB) == len(set(VOCAB)) < 200


def test_processor_expands_the_image_to_a_16x16_grid_and_chat_template_matches():
    processor = build_processor()
    s = make_sample(0, "test", 0)
    inputs = processor(images=s.image, text=format_prompt(s.prompt), return_tensors="pt")
    assert int((inputs["input_ids"] == IMAGE_TOKEN_ID).sum()) == 256
    assert tuple(inputs["pixel_values"].shape) == (1, 3, 112, 112)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": s.prompt}]}]
    assert processor.apply_chat_template(messages, add_generation_prompt=True) == format_prompt(s.prompt, "chat")
    assert processor.chat_template == CHAT_TEMPLATE


def test_save_and_from_pretrained_round_trip_is_exact(tmp_path):
    model, processor = build_model(TINY, seed=1), build_processor()
    save_pretrained(model, processor, tmp_path)
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= {
        p.name for p in tmp_path.iterdir()
    }
    loaded, loaded_proc = load_pretrained(tmp_path)
    assert type(loaded).__name__ == "LlavaForConditionalGeneration" and size_of(loaded) == TINY
    s = make_sample(0, "test", 1)
    a = processor(images=s.image, text=format_prompt(s.prompt), return_tensors="pt")
    b = loaded_proc(images=s.image, text=format_prompt(s.prompt), return_tensors="pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with torch.no_grad():
        assert torch.equal(model(**a).logits, loaded(**b).logits)
    assert loaded.generation_config.eos_token_id == 2


def test_same_seed_same_weights_and_missing_folder_is_named(tmp_path):
    a, b = build_model(TINY, seed=5), build_model(TINY, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(FileNotFoundError, match="config.json missing"):
        load_pretrained(tmp_path / "nothing")


def test_vision_position_table_starts_from_2d_sincos_codes():
    from tokcompress_grounding.model import sincos_positions

    codes = sincos_positions(16, 8, amplitude=1.0)
    assert codes.shape == (256, 8)
    # channels 0-3 encode the column (sin f0, sin f1, cos f0, cos f1), 4-7 the row; frequency f0 = 1 rad/patch
    patch = 3 * 16 + 5  # row 3, column 5
    expected = torch.tensor([math.sin(5), math.cos(5), math.sin(3), math.cos(3)])
    assert torch.allclose(codes[patch, [0, 2, 4, 6]], expected, atol=1e-6)
    model = build_model(TINY, seed=0)
    table = model.model.vision_tower.embeddings.position_embedding.weight
    assert torch.equal(table[0], torch.zeros(16)) and torch.equal(table[1:], sincos_positions(16, 16))
    with pytest.raises(ValueError, match="multiple of 4"):
        sincos_positions(16, 6)

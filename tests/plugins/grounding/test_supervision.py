"""Per-patch training targets: hand-worked cells of a two-type scene, and a loss the heads can drive to zero."""

from __future__ import annotations

import torch

from tokcompress_grounding.data import GRID, Scene, Shape
from tokcompress_grounding.supervision import FIELDS, PatchHeads, patch_targets

SCENE = Scene(
    shapes=(
        Shape("circle", "red", "small", (6, 13, 19, 25)),  # cells x 1-2, y 2-3
        Shape("circle", "red", "large", (31, 31, 50, 50)),  # cells x 5-7, y 5-7
        Shape("square", "blue", "large", (63, 0, 88, 25)),  # cells x 10-13, y 0-3
    ),
    background="checker",
    main=("red", "circle"),
)


def _at(targets, x, y) -> dict:
    return dict(zip(FIELDS, targets[y * GRID + x].tolist()))


def test_hand_worked_targets():
    t = patch_targets(SCENE)
    assert t.shape == (GRID * GRID, len(FIELDS))
    # red = colour 1, circle = kind 1, small = size 1
    # pair = colour index * 4 + kind index (+1 for the background class); type = 2 * pair + large (+1)
    assert _at(t, 1, 2) == {"colour": 1, "kind": 1, "size": 1, "anchor": 1, "pair": 1, "type": 1,
                            "x1": 1, "y1": 2, "x2": 3, "y2": 4, "dx": 0, "dy": 0}
    assert _at(t, 2, 3) == {**_at(t, 1, 2), "anchor": 0, "dx": 1, "dy": 1}
    assert _at(t, 7, 7) == {"colour": 1, "kind": 1, "size": 2, "anchor": 0, "pair": 1, "type": 2,
                            "x1": 5, "y1": 5, "x2": 8, "y2": 8, "dx": 2, "dy": 2}
    # blue square: colour 2, kind 1 -> pair 2 * 4 + 1 = 9 -> class 10; large -> type 2 * 9 + 1 = 19 -> class 20
    assert _at(t, 10, 0) == {"colour": 3, "kind": 2, "size": 2, "anchor": 1, "pair": 10, "type": 20,
                             "x1": 10, "y1": 0, "x2": 14, "y2": 4, "dx": 0, "dy": 0}
    assert _at(t, 13, 1) == {**_at(t, 10, 0), "anchor": 0, "dx": 3, "dy": 1}
    background = {"colour": 0, "kind": 0, "size": 0, "anchor": 0, "pair": 0, "type": 0,
                  "x1": -100, "y1": -100, "x2": -100, "y2": -100, "dx": -100, "dy": -100}
    assert _at(t, 3, 2) == background and _at(t, 14, 0) == background and _at(t, 15, 15) == background
    assert int(t[:, list(FIELDS).index("anchor")].sum()) == 3
    covered = 2 * 2 + 3 * 3 + 4 * 4
    assert int((t[:, 0] > 0).sum()) == covered


def test_heads_read_words_through_the_embeddings_and_learn_separable_targets():
    torch.manual_seed(0)
    t = patch_targets(SCENE)
    embeddings = torch.nn.Embedding(40, GRID * GRID)  # stands in for the LM's tied word embeddings
    words = {"colour": list(range(6)), "kind": list(range(6, 10)), "size": [10, 11]}
    heads = PatchHeads(embeddings, words, edge_ids=list(range(16, 32)))
    assert not any(p is embeddings.weight for p in heads.parameters())  # the LM owns and saves its embeddings
    features = torch.nn.functional.one_hot(torch.arange(GRID * GRID)).float()  # every patch separable
    with torch.no_grad():
        start = float(heads.loss(features, t))
    optimizer = torch.optim.Adam([*heads.parameters(), *embeddings.parameters()], lr=0.1)
    for _ in range(200):
        optimizer.zero_grad()
        loss = heads.loss(features, t)
        loss.backward()
        optimizer.step()
    assert embeddings.weight.grad is not None and embeddings.weight.grad[:32].abs().sum() > 0
    with torch.no_grad():
        assert start > 10 and float(heads.loss(features, t)) < 0.05


def test_build_heads_uses_the_models_word_and_edge_tokens():
    from tokcompress_grounding.model import COORD_IDS, build_model, build_processor
    from tokcompress_grounding.supervision import build_heads

    model = build_model()
    tokenizer = build_processor().tokenizer
    heads = build_heads(model, tokenizer)
    assert heads.embeddings[0] is model.get_input_embeddings()
    assert tokenizer.convert_ids_to_tokens(heads.word_ids["kind"].tolist()) == ["circle", "square", "triangle", "cross"]
    assert set(heads.word_ids) == {"colour", "kind", "size"}  # no count: the LM counts itself (docs/grounding-model.md)
    assert heads.edge_ids.tolist()[:3] == [COORD_IDS[0], COORD_IDS[6], COORD_IDS[13]] and len(heads.edge_ids) == GRID

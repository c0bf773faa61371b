"""Dense per-patch supervision used during training: what each visual token should come to encode.

The answer loss gives one signal per answer token. From it alone a small model on a CPU budget did not
learn to read a box off the patch grid: after 15 minutes of training, grounding stayed below 10%
(docs/grounding-model.md). So training also asks the projector output of every patch (the visual
token the LM sees) to predict, through linear heads that exist only during training, the shape
covering that patch: its colour, kind and size, whether the patch is the shape's top-left cell, the
shape's box in cells, and the patch's own offset (column, row) inside that box. Patches on the background
predict class 0 of the attribute fields and nothing for the box or offset. The saved model is a plain
LLaVA; the heads are dropped.

The offset is what makes the top-left cell (the anchor) exact, and counting needs exact anchors: an LM
trained on clean per-patch attributes counts only when the anchor is among them. A filled square's
top-left cell looks like any other of its cells, and a cross's is empty background, so the anchor is a
relation to the neighbours; with the binary anchor target alone, the vision tower got every anchor right
(and no extra) in 19 of 96 validation images after stage 1, with the offset target in 82 of 96
(docs/grounding-model.md).

No count: a per-patch "how many shapes like me" target, read through the count words' embeddings, was
learned to only 49% by the vision tower in 1500 steps, so counting is left to the LM.
"""

from __future__ import annotations

import torch

from .data import COLOURS, GRID, SHAPES, SIZES, Scene, Shape, cell_edge

__all__ = ["FIELDS", "WORD_FIELDS", "field_words", "cell_box", "patch_targets", "PatchHeads", "build_heads"]

_SIDE = max(SIZES["large"])
"""Most cells along one side of a shape."""

FIELDS: dict[str, int] = {
    "colour": 1 + len(COLOURS),
    "kind": 1 + len(SHAPES),
    "size": 3,
    "anchor": 2,
    "pair": 1 + len(COLOURS) * len(SHAPES),
    "type": 1 + len(COLOURS) * len(SHAPES) * 2,
    "x1": GRID + 1,
    "y1": GRID + 1,
    "x2": GRID + 1,
    "y2": GRID + 1,
    "dx": _SIDE,
    "dy": _SIDE,
}
"""Target field -> number of classes, in column order of `patch_targets`. ``pair`` is (colour, kind) as
one class, what a counting question names; ``type`` is (size, colour, kind), what a grounding question
names: one-hot conjunctions the LM can match a question against with a single dot product. Box fields
are cell indices; ``dx``/``dy`` the patch's column and row inside its shape's box (0 at the anchor)."""
_BOX = ("x1", "y1", "x2", "y2")
_LINEAR = ("anchor", "pair", "type", "dx", "dy")
"""Fields with a plain linear head."""
IGNORE = -100
_CELL = {cell_edge(k): k for k in range(GRID + 1)}
_COLUMN = {f: i for i, f in enumerate(FIELDS)}
"""Field -> its column in `patch_targets`."""


def cell_box(shape: Shape) -> tuple[int, int, int, int]:
    """The shape's box in cells ``(c1, r1, c2, r2)``, ends exclusive: the patches it covers."""
    return tuple(_CELL[v] for v in shape.box)  # type: ignore[return-value]


def patch_targets(scene: Scene):
    """``[GRID * GRID, len(FIELDS)]`` long targets, patches in row-major order (the visual token order)."""
    t = torch.zeros(GRID, GRID, len(FIELDS), dtype=torch.long)
    box_cols = [_COLUMN[f] for f in _BOX]
    t[..., box_cols + [_COLUMN["dx"], _COLUMN["dy"]]] = IGNORE
    colours, kinds = list(COLOURS), list(SHAPES)
    for shape in scene.shapes:
        c1, r1, c2, r2 = cell_box(shape)
        colour, kind, large = colours.index(shape.colour), kinds.index(shape.kind), int(shape.size == "large")
        pair = colour * len(kinds) + kind
        cells = t[r1:r2, c1:c2]
        cells[..., :6] = torch.tensor([1 + colour, 1 + kind, 1 + large, 0, 1 + pair, 1 + 2 * pair + large])
        cells[..., box_cols] = torch.tensor([c1, r1, c2, r2])
        t[r1, c1, _COLUMN["anchor"]] = 1
        cells[..., _COLUMN["dx"]] = torch.arange(c2 - c1)
        cells[..., _COLUMN["dy"]] = torch.arange(r2 - r1)[:, None]
    return t.reshape(GRID * GRID, len(FIELDS))


WORD_FIELDS = ("colour", "kind", "size")
"""Fields read through the LM's word embeddings (`PatchHeads`)."""


def field_words() -> dict[str, list[str]]:
    """The vocabulary word of each class >= 1 of the word-read fields."""
    from .data import SIZES

    return {"colour": list(COLOURS), "kind": list(SHAPES), "size": list(SIZES)}


class PatchHeads(torch.nn.Module):
    """Read-outs of every visual token, used only in training.

    Colour, kind and size are read through the LM's own (tied) word embeddings: the logit of
    "red" is a learned scale times the visual token's dot product with the embedding of the word "red",
    against a learned background vector. Training thus pulls the visual tokens of a small red circle
    towards the embeddings of "small", "red" and "circle", the words of a question about it, so the LM
    matches like with like. The box is read the same way through the coordinate tokens of the cell
    edges, after one learned linear map per coordinate; anchor, pair, type and offset have plain linear heads.
    """

    def __init__(self, embeddings: torch.nn.Embedding, word_ids: dict[str, list[int]], edge_ids: list[int]):
        super().__init__()
        dim = embeddings.weight.shape[1]
        self.embeddings = [embeddings]  # a list: not registered, the LM owns (and saves) it
        self.word_ids = {f: torch.tensor(word_ids[f]) for f in WORD_FIELDS}
        self.edge_ids = torch.tensor(edge_ids)
        self.background = torch.nn.Parameter(torch.zeros(len(WORD_FIELDS), dim))
        self.scale = torch.nn.Parameter(torch.full((len(WORD_FIELDS) + len(_BOX),), 5.0))
        self.box = torch.nn.ModuleList(torch.nn.Linear(dim, dim, bias=False) for _ in _BOX)
        self.linear = torch.nn.Linear(dim, sum(FIELDS[f] for f in _LINEAR))

    def loss(self, features, targets):
        """Sum over fields of the mean cross-entropy; `features` ``[..., dim]``, `targets` ``[..., fields]``."""
        ce = torch.nn.functional.cross_entropy
        table = self.embeddings[0].weight
        v = features.reshape(-1, features.shape[-1])
        targets = targets.reshape(-1, len(FIELDS))
        column = {f: targets[:, i] for f, i in _COLUMN.items()}
        total = 0.0
        for i, f in enumerate(WORD_FIELDS):
            words = table[self.word_ids[f]]
            logits = torch.cat([v @ self.background[i][:, None], self.scale[i] * v @ words.T], dim=1)
            t = column[f].masked_fill(column[f] >= logits.shape[1], IGNORE)
            total = total + ce(logits, t, ignore_index=IGNORE)
        edges = table[self.edge_ids]
        for i, f in enumerate(_BOX):
            logits = self.scale[len(WORD_FIELDS) + i] * self.box[i](v) @ edges.T
            t = column[f].masked_fill(column[f] >= len(self.edge_ids), IGNORE)
            total = total + ce(logits, t, ignore_index=IGNORE)
        rest = self.linear(v).split([FIELDS[f] for f in _LINEAR], dim=1)
        for f, logits in zip(_LINEAR, rest):
            total = total + ce(logits, column[f], ignore_index=IGNORE)
        return total


def build_heads(model, tokenizer) -> PatchHeads:
    """`PatchHeads` reading through `model`'s word embeddings, word ids from `tokenizer`."""
    from .model import COORD_IDS

    ids = {f: tokenizer.convert_tokens_to_ids(words) for f, words in field_words().items()}
    edges = [COORD_IDS[cell_edge(k)] for k in range(GRID)]  # cell edge k as its coordinate token (k <= 15)
    return PatchHeads(model.get_input_embeddings(), ids, edges)

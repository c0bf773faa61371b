"""Attention supervision used during training: one LM head learns where to look before it learns what to say.

The answer loss reaches the query/key weights of a retrieval head only through the values it averages,
which at initialisation spread over ~270 tokens, so the LM spends hundreds of steps before its attention
finds the asked-about shape. This module recomputes, for a few (layer, head) pairs and only at the
positions that predict a grounding answer, that head's attention from the layer's input (a forward
pre-hook captures it, so the model itself keeps its fast attention kernel) and returns
``-log(attention mass on the target shape's patches)``.

Counting heads (`train.TrainConfig.counting_heads`, supervised in the counting stage only) get an
exact target distribution at the position that predicts the count word: equal shares for BOS and for
each shape of the asked colour and kind, a shape's share spread over its patches
(``counting_keys="area"``) or on its top-left patch (``"anchor"``); all on BOS for zero. The share left
on BOS is then ``1 / (count + 1)``, which later layers can read the count from, whatever the shapes'
sizes.
"""

from __future__ import annotations

import torch

from .data import GRID
from .supervision import cell_box

__all__ = ["AttentionTarget", "attention_queries", "check_counting_keys", "COUNTING_KEYS"]

Query = tuple[int, list[int], list[int], list[float]]
"""``(row, query positions, key positions, target weight of each key)``."""
COUNTING_KEYS = ("area", "anchor")


def check_counting_keys(value: str) -> None:
    """Raise a ValueError naming the choices unless `value` is one of `COUNTING_KEYS`."""
    if value not in COUNTING_KEYS:
        raise ValueError(f"counting_keys must be one of {list(COUNTING_KEYS)}, got {value!r}")


def _patches(first_image: int, shape) -> list[int]:
    c1, r1, c2, r2 = cell_box(shape)
    return [first_image + r * GRID + c for r in range(r1, r2) for c in range(c1, c2)]


def attention_queries(batch: dict, groups, image_token_id: int, counting_keys: str = "area") -> dict[str, list[Query]]:
    """Per task, one `Query` per question of a packed batch (`train.encode_groups`).

    The query positions are those whose next token is part of the answer (the label runs of the batch,
    in question order; not the EOS). Grounding keys: the visual tokens of the patches the target shape
    covers (weights unused: the loss is on their total). Counting keys: position 0 (BOS) and, for every
    shape of the asked colour and kind, its patches (``"area"``) or its top-left patch (``"anchor"``),
    weighted so that BOS and each shape get ``1 / (count + 1)``.
    """
    check_counting_keys(counting_keys)
    out: dict[str, list[Query]] = {"grounding": [], "counting": []}
    labels, ids = batch["labels"], batch["input_ids"]
    for row, group in enumerate(groups):
        first_image = int((ids[row] == image_token_id).nonzero()[0, 0])
        runs: list[list[int]] = []
        for t in (labels[row] != -100).nonzero()[:, 0].tolist():
            if runs and t == runs[-1][-1] + 1:
                runs[-1].append(t)
            else:
                runs.append([t])
        for run, question in zip(runs, group.questions, strict=True):
            positions = [t - 1 for t in run[:-1]]  # run[-1] is the EOS
            if question.task == "grounding":
                keys = _patches(first_image, question.about[0])
                weights = [1.0 / len(keys)] * len(keys)
            else:
                share = 1.0 / (len(question.about) + 1)
                keys, weights = [0], [share]
                for shape in question.about:
                    patches = _patches(first_image, shape)[: 1 if counting_keys == "anchor" else None]
                    keys += patches
                    weights += [share / len(patches)] * len(patches)
            out[question.task].append((row, positions, keys, weights))
    return out


class AttentionTarget:
    """Recomputes heads ``(layer, head)`` of a Llama LM at chosen positions, for the attention losses."""

    def __init__(self, language_model, heads: dict[str, list[tuple[int, int]]]):
        self.heads = heads
        self.captured: dict[int, tuple] = {}
        self.attn = {layer: language_model.layers[layer].self_attn for pairs in heads.values() for layer, _ in pairs}
        self.handles = [
            module.register_forward_pre_hook(self._hook(layer), with_kwargs=True) for layer, module in self.attn.items()
        ]

    def _hook(self, layer: int):
        def capture(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            self.captured[layer] = (hidden, kwargs["position_embeddings"])

        return capture

    def probabilities(self, layer: int, head: int, row: int, queries: list[int], mask) -> torch.Tensor:
        """``[len(queries), T]`` attention of one head at the query positions of one row (as the model computed it)."""
        from transformers.models.llama.modeling_llama import rotate_half

        module = self.attn[layer]
        hidden, (cos, sin) = self.captured[layer]
        d = module.head_dim
        kv_head = head // (module.config.num_attention_heads // module.config.num_key_value_heads)
        q = hidden[row, queries] @ module.q_proj.weight[head * d : (head + 1) * d].T
        k = hidden[row] @ module.k_proj.weight[kv_head * d : (kv_head + 1) * d].T
        q = q * cos[row, queries] + rotate_half(q) * sin[row, queries]
        k = k * cos[row] + rotate_half(k) * sin[row]
        logits = (q @ k.T) * module.scaling
        return logits.masked_fill(~mask[row, 0, queries], float("-inf")).softmax(-1)

    def loss(self, queries: dict[str, list[Query]], mask) -> torch.Tensor:
        """Mean over heads and query positions: grounding ``-log`` (mass on the target patches), counting
        the cross-entropy of the attention against the target distribution."""
        terms = []
        for task, pairs in self.heads.items():
            by_row: dict[int, list[Query]] = {}
            for query in queries[task]:
                by_row.setdefault(query[0], []).append(query)
            for layer, head in pairs:
                for row, row_queries in by_row.items():  # one key projection per row, not per question
                    probs = self.probabilities(layer, head, row, [t for q in row_queries for t in q[1]], mask)
                    at = 0
                    for _, positions, keys, weights in row_queries:
                        p = probs[at : at + len(positions), keys]
                        at += len(positions)
                        if task == "grounding":
                            terms.append(-p.sum(-1).clamp_min(1e-6).log())
                        else:
                            terms.append(-(p.clamp_min(1e-6).log() * torch.tensor(weights)).sum(-1))
        return torch.cat(terms).mean() if terms else torch.zeros(())

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

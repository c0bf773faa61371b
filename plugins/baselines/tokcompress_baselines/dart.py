"""DART's pivot selector (Wen et al. 2025, ``ZichenWen1/DART``): keep tokens least similar to pivots.

1. Image pivots: the top `pivot_image` visual tokens by score (DART: L1 norm of the layer K-1 keys,
   the ``key_norm`` scorer with ``p: 1``). Text pivots: the top `pivot_text` text tokens after the
   image by the L1 norm of their keys (``VisualTokens.text_keys``).
2. Pool: the visual tokens minus the image pivots.
3. Visiting the pivots one by one, take the pool tokens with the *lowest* cosine to the pivot (on
   `features`, i.e. DART's final-normed hidden states; text pivots use ``text_features``), keep
   them, and remove them from the pool.
4. Keep the image pivots and every pick (text pivots are text, kept by the model anyway).

Each visit shrinks the pool, so the visiting order matters. DART visits the pivots in the iteration
order of a Python ``set`` of their absolute sequence positions, which ``pivot_order: set_compat``
reproduces by building the same set from ``image_start``.

Counts: the pipeline asks for exactly ``keep`` tokens. ``count_mode: exact`` spreads the
``keep - pivot_image`` picks over the pivots, earlier visits taking the remainder. DART keeps
``pivot_image + P * TOKEN_TOPK`` tokens (``P`` pivots); ``count_mode: dart_compat`` gives every pivot
the same count and refuses any other `keep`, which `dart_reference_keep` computes from DART's own
settings. Cosines are fp32 (DART: the model dtype), so only near-ties can break differently.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from tokcompress.component import Params
from tokcompress.errors import InputError
from tokcompress.graphs.base import Graph
from tokcompress.selectors.base import Selector, rank_descending
from tokcompress.tokens import VisualTokens

__all__ = ["DartPivotSelector", "DartParams"]


class DartParams(Params):
    pivot_image: int = Field(4, ge=1)
    """Image pivots, the top tokens by score (DART: 4)."""
    pivot_text: int = Field(4, ge=0)
    """Text pivots, the top text tokens by key norm (DART: 4); 0 needs no text inputs."""
    text_norm: Literal[1, 2] = 1
    """Order of the key norm that ranks text pivots (DART: L1, like its image pivots)."""
    pivot_order: Literal["score", "index", "set_compat"] = "score"
    """Visiting order. ``score``: image pivots by descending score, then text pivots by descending
    key norm (DART's list order before it builds a set). ``index``: ascending sequence position
    (image pivots, then text pivots). ``set_compat``: DART's exact order, the iteration order of
    ``set(image_positions + text_positions)``; needs ``image_start``."""
    count_mode: Literal["exact", "dart_compat"] = "exact"
    """``exact``: ``keep - pivot_image`` picks spread over the pivots, earlier visits taking the
    remainder. ``dart_compat``: equal picks per pivot as DART; ``keep`` must then be
    ``pivot_image + P * TOKEN_TOPK`` (see `tokcompress_baselines.budgets.dart_reference_keep`)."""
    image_start: int | None = Field(None, ge=0)
    """Absolute sequence position of the first visual token (35 for LLaVA-1.5's vicuna_v1 prompt).
    Visual token k (k-th valid token of the row) sits at ``image_start + k`` and text token t at
    ``image_start + n_valid + t``, as in DART, where the text follows the image span. Only
    ``set_compat`` reads it (Python's set order depends on the integer values)."""

    @model_validator(mode="after")
    def _set_compat_needs_positions(self) -> "DartParams":
        if self.pivot_order == "set_compat" and self.image_start is None:
            raise ValueError(
                "pivot_order 'set_compat' visits pivots in the order of a Python set of their absolute "
                "sequence positions; set image_start (e.g. 35 for LLaVA-1.5 with the vicuna_v1 template)"
            )
        return self


class DartPivotSelector(Selector):
    """DART's duplication-aware selection around image and text pivots (one row at a time)."""

    name = "dart_pivots"
    Params = DartParams

    def requires(self) -> frozenset[str]:
        return frozenset({"text_keys", "text_features"}) if self.params.pivot_text > 0 else frozenset()

    def select(self, tokens: VisualTokens, scores: torch.Tensor, graph: Graph | None, keep: int) -> torch.Tensor:
        self._check_text(tokens)
        valid = tokens.valid_mask()
        rows = []
        for b in range(tokens.batch_size):
            pos = valid[b].nonzero().flatten()  # row-local index -> token index, ascending
            by_score = rank_descending(scores[b, pos][None])[0]  # ties to the lower index
            rows.append(pos[self._select_row(tokens, b, pos, by_score, keep)])
        return torch.stack(rows)

    # -- one row ------------------------------------------------------------------------
    def _select_row(self, tokens: VisualTokens, b: int, pos: torch.Tensor, by_score: torch.Tensor, keep: int) -> torch.Tensor:
        p = self.params
        n = len(pos)
        n_img = min(p.pivot_image, keep) if p.count_mode == "exact" else p.pivot_image
        image_pivots = by_score[:n_img].tolist()  # local indices, descending score
        text_pivots = self._text_pivots(tokens, b)  # text indices, descending key norm
        x = tokens.features[b] if n == tokens.num_tokens else tokens.features[b, pos]  # no copy without padding
        unit = F.normalize(x.float(), dim=-1)  # [n, D]
        vectors = [unit[i] for i in image_pivots]
        if text_pivots:
            text = F.normalize(tokens.text_features[b].float(), dim=-1)
            vectors += [text[t] for t in text_pivots]
        cos = torch.stack(vectors) @ unit.T  # [P, n]: pivot (image, then text) x visual token
        pivots = [("image", i, k) for k, i in enumerate(image_pivots)]
        pivots += [("text", t, len(image_pivots) + k) for k, t in enumerate(text_pivots)]
        visit = self._visit_order(pivots, n, tokens, b)
        counts = self._counts(keep, n_img, len(visit))
        if p.pivot_order == "set_compat":
            picks = self._picks_set_compat(cos, visit, counts, image_pivots, n)
        else:
            picks = self._picks(cos, visit, counts, image_pivots, n)
        return torch.tensor(image_pivots + picks, dtype=torch.long, device=pos.device)

    def _text_pivots(self, tokens: VisualTokens, b: int) -> list[int]:
        if self.params.pivot_text == 0:
            return []
        norms = torch.linalg.vector_norm(tokens.text_keys[b].float(), ord=self.params.text_norm, dim=-1)
        tmask = tokens.text_mask[b] if tokens.text_mask is not None else None
        order = rank_descending(norms[None], None if tmask is None else tmask[None])[0]
        available = int(tmask.sum()) if tmask is not None else len(norms)
        return order[: min(self.params.pivot_text, available)].tolist()

    def _visit_order(self, pivots: list[tuple[str, int, int]], n: int, tokens: VisualTokens, b: int) -> list[int]:
        """Rows of `cos` in visiting order."""
        mode = self.params.pivot_order
        if mode == "score":
            return [k for _, _, k in pivots]
        if mode == "index":  # the text follows the image, so index order = image pivots, then text pivots
            image = sorted((i, k) for kind, i, k in pivots if kind == "image")
            text = sorted((t, k) for kind, t, k in pivots if kind == "text")
            return [k for _, k in image + text]
        text_rank = self._text_rank(tokens, b)
        start = self.params.image_start
        absolute = {}
        for kind, i, k in pivots:
            absolute[start + i if kind == "image" else start + n + text_rank[i]] = k
        image_abs = [start + i for kind, i, _ in pivots if kind == "image"]
        text_abs = [start + n + text_rank[i] for kind, i, _ in pivots if kind == "text"]
        return [absolute[a] for a in list(set(image_abs + text_abs))]  # DART: `for item in list(set(...))`

    def _text_rank(self, tokens: VisualTokens, b: int) -> dict[int, int]:
        """Text index -> position among the row's valid text tokens (its offset after the image span)."""
        if tokens.text_keys is None:
            return {}
        T = tokens.text_keys.shape[1]
        real = tokens.text_mask[b].tolist() if tokens.text_mask is not None else [True] * T
        ranks, k = {}, 0
        for t, ok in enumerate(real):
            if ok:
                ranks[t] = k
                k += 1
        return ranks

    def _counts(self, keep: int, n_img: int, n_pivots: int) -> list[int]:
        total = keep - n_img
        if self.params.count_mode == "exact":
            base, extra = divmod(total, n_pivots)
            return [base + (k < extra) for k in range(n_pivots)]
        if total < 0 or total % n_pivots:
            low = n_img + (max(total, 0) // n_pivots) * n_pivots
            raise InputError(
                f"selector 'dart_pivots' with count_mode 'dart_compat' keeps pivot_image + P * TOKEN_TOPK "
                f"= {n_img} + {n_pivots} * t tokens, but keep={keep}; use keep={low} or {low + n_pivots} "
                f"(tokcompress_baselines.budgets.dart_reference_keep gives DART's own count), or count_mode 'exact'"
            )
        return [total // n_pivots] * n_pivots

    @staticmethod
    def _picks(cos: torch.Tensor, visit: list[int], counts: list[int], image_pivots: list[int], n: int) -> list[int]:
        """Lowest cosine first, ties to the lower token index; the pool shrinks after each pivot."""
        in_pool = torch.ones(n, dtype=torch.bool, device=cos.device)
        in_pool[image_pivots] = False
        picks: list[int] = []
        for k, c in zip(visit, counts):
            if c == 0:
                continue
            ranked = torch.sort(cos[k].masked_fill(~in_pool, float("inf")), stable=True).indices[:c]
            in_pool[ranked] = False
            picks += ranked.tolist()
        return picks

    def _picks_set_compat(self, cos: torch.Tensor, visit: list[int], counts: list[int], image_pivots: list[int], n: int) -> list[int]:
        """DART's pool bookkeeping: a Python set of absolute positions, listed before each pivot, and
        ``topk`` of the negated cosine over that list (its order decides exact ties)."""
        start = self.params.image_start
        pool = set(range(start, start + n)) - set([start + i for i in image_pivots])
        pool_list = list(pool)
        picks: list[int] = []
        for k, c in zip(visit, counts):
            local = torch.tensor([a - start for a in pool_list], dtype=torch.long, device=cos.device)
            top = (-cos[k][local]).topk(c).indices.tolist()
            chosen = [pool_list[i] for i in top]
            picks += [a - start for a in chosen]
            pool.difference_update(chosen)
            pool_list = list(pool)
        return picks

    def _check_text(self, tokens: VisualTokens) -> None:
        if self.params.pivot_text == 0:
            return
        tf, D = tokens.text_features, tokens.features.shape[-1]  # VisualTokens checks the text counts agree
        if tf.shape[-1] != D:
            raise InputError(
                f"selector 'dart_pivots': VisualTokens.text_features has width {tf.shape[-1]} but features "
                f"have width {D}; text pivots are compared with visual tokens in the features' space"
            )

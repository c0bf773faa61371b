"""GraphBuilders `hybrid`, `spatial`, `semantic`: D2Pruner's token graph, as lazy boolean adjacency.

Two tokens are linked when they would be redundant together: close on the same 2-D grid
(spatial) and/or near-duplicate in content (cosine of features > threshold). A selector asks for
the rows of the tokens it is deciding on (`rows`, ``[B, R, N]``) or only the pairs it needs (`block`,
``[B, R, C]``); similarity is computed in fp32 per request and no N x N float matrix is ever held
(results are produced in bounded chunks of rows).

``S_spat`` (the spatial term of the fused rule) is, for two tokens of the same grid segment,
``1`` when their distance is at most `radius` (``binary``) or ``max(0, 1 - d / (radius + 1))``
(``linear``), and ``0`` otherwise: across segments (tiles, crops, frames) and for off-grid
tokens (newlines) it is always 0, so those tokens are linked only semantically.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from tokcompress.component import Params
from tokcompress.errors import InputError
from tokcompress.graphs.base import Graph, GraphBuilder
from tokcompress.tokens import VisualTokens

__all__ = [
    "HybridGraph",
    "HybridGraphBuilder",
    "SemanticGraphBuilder",
    "SpatialGraphBuilder",
    "HybridParams",
    "SemanticParams",
    "SpatialParams",
]

Source = Literal["features", "keys", "image_embeds"]
Metric = Literal["chebyshev", "manhattan", "euclidean"]

# Temporaries are kept near these element counts (fp32: 32 MiB and 64 MiB) whatever B, N, D.
_ROW_CHUNK_ELEMS = 1 << 23
_COL_CHUNK_ELEMS = 1 << 24
_MIN_SPAN = 1e-6  # semantic_norm minmax: smaller cosine ranges count as constant


# -- parameters (shared field definitions, one docstring each) ----------------------------
class SemanticParams(Params):
    threshold: float = Field(0.8, ge=-1, le=1)
    """``theta_sim``: link two tokens when their cosine similarity exceeds it. Evidence T (0.8)."""
    source: Source = "features"
    """Vectors compared: ``features`` (hidden states H at the pruning layer's input; evidence A~/T),
    ``keys`` or ``image_embeds``."""
    semantic_norm: Literal["none", "minmax"] = "none"
    """``minmax`` rescales cosines to [0, 1] by the row's min and max over distinct valid pairs
    (one extra O(N^2 D) pass; a range below 1e-6 counts as constant and gives 0). The paper's
    hat on S_sem hints at a normalisation of unknown form: evidence U; default ``none`` as in
    both ports (T)."""


class SpatialParams(Params):
    radius: float = Field(2, ge=0)
    """Neighbourhood radius on the grid, in patches. Evidence T (r = 2, Qwen port)."""
    metric: Metric = "chebyshev"
    """Grid distance: ``chebyshev`` (max(|dr|, |dc|); a (2r+1)^2 square, evidence T), ``manhattan``
    or ``euclidean``. Tokens of different segments or off the grid are never spatial neighbours."""


class HybridParams(SemanticParams, SpatialParams):
    rule: Literal["fused", "or"] = "fused"
    """``fused``: link iff ``semantic_weight * S_sem + (1 - semantic_weight) * S_spat > threshold``.
    ``or``: link iff ``S_sem > threshold`` or the tokens are within `radius`. Evidence U (each port
    uses a different rule); default ``fused``."""
    semantic_weight: float = Field(0.5, ge=0, le=1)
    """``alpha`` of the fused rule. Evidence T, conflicting: 1.0 (understanding, Qwen port) and 0.5
    (localisation, InternVL reproduction, whose keyword weighs the spatial term; at 0.5 the
    direction is moot). With binary S_spat, 1.0 gives purely semantic edges and 0.5 with
    threshold 0.8 links only spatial neighbours whose cosine exceeds 0.6."""
    spatial_form: Literal["binary", "linear"] = "binary"
    """S_spat in the fused rule: ``binary`` (1 within radius; evidence T) or ``linear``
    (``max(0, 1 - d / (radius + 1))``; evidence U). The ``or`` rule always uses the radius test."""


# -- the lazy graph -------------------------------------------------------------------------
class HybridGraph(Graph):
    """Boolean adjacency over all N tokens of each row, computed on request (`rows`, `block`).

    `combine` is ``"semantic"`` (cosine > threshold), ``"spatial"`` (within radius), ``"or"`` or
    ``"fused"`` (see `HybridParams.rule`). Padding tokens have no edges; there are no self loops.
    """

    kind = "adjacency"

    def __init__(
        self,
        tokens: VisualTokens,
        *,
        combine: str,
        vectors: torch.Tensor | None = None,
        threshold: float = 0.8,
        semantic_norm: str = "none",
        radius: float = 2,
        metric: str = "chebyshev",
        semantic_weight: float = 1.0,
        spatial_form: str = "binary",
    ) -> None:
        super().__init__(tokens.batch_size, tokens.num_tokens, tokens.device)
        self.combine = combine
        self.valid = tokens.valid_mask()
        self.vectors = vectors
        self.threshold, self.semantic_norm = float(threshold), semantic_norm
        self.radius, self.metric = float(radius), metric
        self.alpha, self.spatial_form = float(semantic_weight), spatial_form
        self.coords = None  # [B, N, 3] int32: segment, row, col (-1 off grid); only if needed
        if combine in ("spatial", "or") or (combine == "fused" and self.alpha < 1):
            self.coords = tokens.coords().to(torch.int32)
        self._inv_norm: torch.Tensor | None = None
        self._range: tuple[torch.Tensor, torch.Tensor] | None = None

    # In every method below, ``columns`` (LongTensor [B, C]) restricts the result to those tokens;
    # None means all N. Results are [B, R, C] (or [B, R, N]).

    # -- semantic term ----------------------------------------------------------------
    def _col_chunks(self) -> list[slice]:
        if self.vectors.dtype == torch.float32:
            return [slice(0, self.num_tokens)]
        step = max(1, _COL_CHUNK_ELEMS // (self.batch_size * self.vectors.shape[-1]))
        return [slice(s, s + step) for s in range(0, self.num_tokens, step)]

    def inv_norm(self) -> torch.Tensor:
        """``[B, N]`` fp32 ``1 / ||v_j||`` (0 for a zero vector, whose cosine is then 0)."""
        if self._inv_norm is None:
            norms = torch.cat(
                [torch.linalg.vector_norm(self.vectors[:, c].float(), dim=-1) for c in self._col_chunks()], dim=1
            )
            self._inv_norm = _safe_inverse(norms)
        return self._inv_norm

    def _picked(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """fp32 vectors ``[B, R, D]`` of tokens `index` and their inverse norms ``[B, R]``."""
        v = _take(self.vectors, index).float()
        return v, _safe_inverse(torch.linalg.vector_norm(v, dim=-1))

    def cosine(self, index: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        """fp32 cosine of tokens `index` to `columns` (raw, before `semantic_norm`)."""
        q, q_inv = self._picked(index)
        if columns is not None:
            k, k_inv = (q, q_inv) if columns is index else self._picked(columns)
            return torch.bmm(q, k.transpose(1, 2)) * q_inv.unsqueeze(-1) * k_inv.unsqueeze(1)
        v = self.vectors
        if v.dtype == torch.float32:
            dots = torch.bmm(q, v.transpose(1, 2))
        else:  # convert column blocks so no fp32 copy of all the vectors is ever held
            dots = torch.cat([torch.bmm(q, v[:, c].float().transpose(1, 2)) for c in self._col_chunks()], dim=2)
        return dots * q_inv.unsqueeze(-1) * self.inv_norm().unsqueeze(1)

    def _cosine_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row min and max cosine over distinct valid pairs, ``[B, 1, 1]`` each (one blocked pass)."""
        if self._range is None:
            B, N = self.batch_size, self.num_tokens
            lo = torch.full((B,), float("inf"), device=self.device)
            hi = torch.full((B,), float("-inf"), device=self.device)
            idx = torch.arange(N, device=self.device).expand(B, N)
            step = self._row_chunk(N)
            for s in range(0, N, step):
                sub = idx[:, s : s + step]
                cos = self.cosine(sub)
                pair = self._pair_mask(sub)
                lo = torch.minimum(lo, cos.masked_fill(~pair, float("inf")).amin(dim=(1, 2)))
                hi = torch.maximum(hi, cos.masked_fill(~pair, float("-inf")).amax(dim=(1, 2)))
            self._range = (lo.view(B, 1, 1), hi.view(B, 1, 1))
        return self._range

    def semantic(self, index: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        """``S_sem`` fp32: cosine, min-max rescaled if asked."""
        cos = self.cosine(index, columns)
        if self.semantic_norm == "none":
            return cos
        lo, hi = self._cosine_range()
        span = hi - lo
        # A span within fp32 rounding of 0 would turn noise into 0..1: such rows get S_sem = 0.
        return torch.where(span > _MIN_SPAN, (cos - lo) / span.clamp_min(_MIN_SPAN), torch.zeros_like(cos))

    # -- spatial term -----------------------------------------------------------------
    def distance(self, index: torch.Tensor, columns: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(d, comparable)``: grid distance (fp32) and whether it is defined (same segment, both
        on the grid)."""
        q = _take(self.coords, index)
        c = self.coords if columns is None else (q if columns is index else _take(self.coords, columns))
        same = (q[..., 0:1] == c[:, None, :, 0]) & (q[..., 1:2] >= 0) & (c[:, None, :, 1] >= 0)
        dr = (q[..., 1:2] - c[:, None, :, 1]).abs()
        dc = (q[..., 2:3] - c[:, None, :, 2]).abs()
        if self.metric == "chebyshev":
            d = torch.maximum(dr, dc).float()
        elif self.metric == "manhattan":
            d = (dr + dc).float()
        else:
            d = torch.sqrt((dr * dr + dc * dc).float())
        return d, same

    def near(self, index: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        """bool: same segment, both on the grid, distance <= radius."""
        d, same = self.distance(index, columns)
        return same & (d <= self.radius)

    def spatial(self, index: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        """``S_spat`` fp32 (see the module docstring)."""
        if self.spatial_form == "binary":
            return self.near(index, columns).float()
        d, same = self.distance(index, columns)
        return torch.where(same, (1 - d / (self.radius + 1)).clamp_min(0), torch.zeros_like(d))

    # -- edges --------------------------------------------------------------------------
    def _row_chunk(self, num_columns: int) -> int:
        return max(1, _ROW_CHUNK_ELEMS // (self.batch_size * num_columns))

    def _pair_mask(self, index: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        """Pairs of two distinct valid tokens (padding has no edges, no token links to itself)."""
        row_ok = torch.gather(self.valid, 1, index).unsqueeze(-1)
        if columns is None:
            own = torch.zeros(index.shape + (self.num_tokens,), dtype=torch.bool, device=self.device)
            own.scatter_(2, index.unsqueeze(-1), True)
            return self.valid.unsqueeze(1) & ~own & row_ok
        col_ok = torch.gather(self.valid, 1, columns).unsqueeze(1)
        return col_ok & row_ok & (index.unsqueeze(-1) != columns.unsqueeze(1))

    def _edges(self, index: torch.Tensor, columns: torch.Tensor | None) -> torch.Tensor:
        t, a = self.threshold, self.alpha
        if self.combine == "semantic" or (self.combine == "fused" and a == 1.0):
            edges = self.semantic(index, columns) > t
        elif self.combine == "spatial":
            edges = self.near(index, columns)
        elif self.combine == "or":
            edges = (self.semantic(index, columns) > t) | self.near(index, columns)
        elif a == 0.0:
            edges = self.spatial(index, columns) > t
        else:
            edges = a * self.semantic(index, columns) + (1 - a) * self.spatial(index, columns) > t
        return edges & self._pair_mask(index, columns)

    def _chunked(self, index: torch.Tensor, columns: torch.Tensor | None) -> torch.Tensor:
        index = index.to(self.device)
        step = self._row_chunk(self.num_tokens if columns is None else max(1, columns.shape[1]))
        if index.shape[1] <= step:
            return self._edges(index, columns)
        return torch.cat([self._edges(index[:, s : s + step], columns) for s in range(0, index.shape[1], step)], dim=1)

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        return self._chunked(index, None)

    def block(self, index: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """``[B, R, C]`` bool edges from tokens `index` to tokens `columns`, i.e. ``rows(index)``
        restricted to those columns, costing O(R * C * D) instead of O(R * N * D)."""
        return self._chunked(index, columns.to(self.device))


def _take(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``t[b, index[b]]`` for ``t`` [B, N, ...] and ``index`` [B, R] (an index_select on the
    flattened batch when ``t`` is contiguous: several times faster than gather with an expanded index)."""
    B, N = t.shape[:2]
    if t.is_contiguous():
        flat = (index + torch.arange(B, device=index.device).unsqueeze(1) * N).flatten()
        return t.reshape(B * N, *t.shape[2:]).index_select(0, flat).view(*index.shape, *t.shape[2:])
    return t[torch.arange(B, device=index.device).unsqueeze(1), index]


def _safe_inverse(norms: torch.Tensor) -> torch.Tensor:
    return torch.where(norms > 0, 1.0 / norms, torch.zeros_like(norms))


# -- builders ---------------------------------------------------------------------------------
def _need_layout(builder: GraphBuilder, tokens: VisualTokens, why: str) -> None:
    if tokens.layouts() is None:
        raise InputError(
            f"graph {builder.name!r} {why} but VisualTokens.layout is None; pass a Layout "
            f"(e.g. Layout.grid(24, 24)) so tokens have grid positions"
        )


class _VectorsMixin:
    def requires(self) -> frozenset[str]:
        source = getattr(self.params, "source", "features")
        return frozenset() if source == "features" else frozenset({source})


class HybridGraphBuilder(_VectorsMixin, GraphBuilder):
    """D2Pruner's hybrid graph: spatial proximity and feature similarity, fused or united."""

    name = "hybrid"
    provides = "adjacency"
    Params = HybridParams

    def build(self, tokens: VisualTokens) -> HybridGraph:
        p = self.params
        if p.rule == "or":
            _need_layout(self, tokens, "uses spatial proximity (rule: or)")
        elif p.semantic_weight < 1:
            _need_layout(self, tokens, f"uses spatial proximity (semantic_weight={p.semantic_weight} < 1)")
        return HybridGraph(
            tokens,
            combine=p.rule,
            vectors=getattr(tokens, p.source),
            threshold=p.threshold,
            semantic_norm=p.semantic_norm,
            radius=p.radius,
            metric=p.metric,
            semantic_weight=p.semantic_weight,
            spatial_form=p.spatial_form,
        )


class SemanticGraphBuilder(_VectorsMixin, GraphBuilder):
    """Feature-similarity edges only: cosine > threshold (ablation ``d2pruner-semantic-only``)."""

    name = "semantic"
    provides = "adjacency"
    Params = SemanticParams

    def build(self, tokens: VisualTokens) -> HybridGraph:
        p = self.params
        return HybridGraph(
            tokens, combine="semantic", vectors=getattr(tokens, p.source), threshold=p.threshold,
            semantic_norm=p.semantic_norm,
        )


class SpatialGraphBuilder(GraphBuilder):
    """Grid-proximity edges only: same segment, distance <= radius (ablation ``d2pruner-spatial-only``)."""

    name = "spatial"
    provides = "adjacency"
    Params = SpatialParams

    def build(self, tokens: VisualTokens) -> HybridGraph:
        _need_layout(self, tokens, "links tokens by grid position")
        return HybridGraph(tokens, combine="spatial", radius=self.params.radius, metric=self.params.metric)

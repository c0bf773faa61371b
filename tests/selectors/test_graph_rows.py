"""`GraphRows`: the dense copy is built only under its byte budget and serves the same rows as the graph;
a CPU batch is selected row by row with the picks of the batch together."""

from __future__ import annotations

import pytest
import torch

from tokcompress import VisualTokens
from tokcompress.graphs.base import Graph
from tokcompress.graphs.cosine import CosineGraph
from tokcompress.selectors.dpp import DPPSelector
from tokcompress.selectors.graph_rows import GraphRows, RowParams
from tokcompress.selectors.maxmin import MaxMinSelector


def test_dense_only_within_the_byte_budget():
    graph = CosineGraph(torch.randn(2, 10, 4))
    # 2 rows x 10 x 10 fp32 = 800 bytes
    assert GraphRows(graph, RowParams(dense_max_bytes=800)).dense is not None
    assert GraphRows(graph, RowParams(dense_max_bytes=799)).dense is None


def test_rows_and_blocks_match_the_graph_either_way():
    graph = CosineGraph(torch.randn(2, 11, 5))
    full = graph.dense()
    index = torch.tensor([[3, 0], [10, 4]])
    for budget in (0, 1 << 20):
        reader = GraphRows(graph, RowParams(dense_max_bytes=budget, block_size=4))
        assert torch.allclose(reader.rows(index), torch.stack([full[0, [3, 0]], full[1, [10, 4]]]))
        assert torch.allclose(reader.row(index[:, 0]), torch.stack([full[0, 3], full[1, 10]]))
        blocks = list(reader.blocks())
        assert [start for start, _ in blocks] == [0, 4, 8]
        assert torch.allclose(torch.cat([rows for _, rows in blocks], dim=1), full)


class PlainCosine(Graph):
    """A third-party similarity graph with only `rows`: the defaults serve its batch rows."""

    kind = "similarity"
    symmetric = True

    def __init__(self, vectors: torch.Tensor) -> None:
        super().__init__(*vectors.shape[:2], vectors.device)
        self.inner = CosineGraph(vectors)

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        return self.inner.rows(index)


def _batch(seed: int = 0) -> VisualTokens:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(3, 40, dtype=torch.bool)
    mask[1, 30:] = False
    return VisualTokens(torch.randn(3, 40, 16, generator=g), attention=torch.rand(3, 40, generator=g), mask=mask)


@pytest.mark.parametrize("budget", [1 << 28, 6400], ids=["dense", "blocks"])
@pytest.mark.parametrize("selector", [MaxMinSelector, DPPSelector], ids=["maxmin", "dpp"])
def test_a_cpu_batch_is_selected_row_by_row_with_the_picks_of_the_batch_together(selector, budget, monkeypatch):
    tokens = _batch()
    scores = tokens.attention
    # 3 x 40 x 40 x 4 = 19200 bytes for the batch, 6400 per row: "blocks" is over the budget for the batch
    chosen = selector(selector.Params(dense_max_bytes=budget))
    graph = CosineGraph(tokens.features)
    got = chosen.select(tokens, scores, graph, 12)
    assert graph._unit is None  # the batch's unit vectors were never normalised at once
    alone = [chosen.select(tokens.rows([b]), scores[b : b + 1], CosineGraph(tokens.features[b : b + 1]), 12)
             for b in range(3)]
    assert torch.equal(got, torch.cat(alone))
    # a graph without its own `batch_row` (rows read through `batch_rows`) gives the same picks
    assert torch.equal(chosen.select(tokens, scores, PlainCosine(tokens.features), 12), got)
    # the rows together, as on other devices, pick the same tokens in the same order
    monkeypatch.setattr(f"{selector.__module__}.by_row", lambda graph, params: False)
    assert torch.equal(chosen.select(tokens, scores, CosineGraph(tokens.features), 12), got)


def test_rows_of_a_batch_are_views_of_consecutive_rows():
    tokens = _batch()
    one = tokens.rows([1])
    assert one.features.data_ptr() == tokens.features[1].data_ptr() and one.features.shape == (1, 40, 16)
    assert torch.equal(one.mask, tokens.mask[1:2]) and torch.equal(one.attention, tokens.attention[1:2])
    picked = tokens.rows([2, 0])
    assert torch.equal(picked.features, tokens.features[[2, 0]])

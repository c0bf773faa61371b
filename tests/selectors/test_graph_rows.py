"""`GraphRows`: the dense copy is built only under its byte budget and serves the same rows as the graph."""

from __future__ import annotations

import torch

from tokcompress.graphs.cosine import CosineGraph
from tokcompress.selectors.graph_rows import GraphRows, RowParams


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

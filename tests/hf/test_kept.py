"""The kept sequence: hand-worked indices, fillers for ragged rows, gathering."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokcompress.hf.kept import build_kept, take


def test_hand_worked_ragged_rows():
    #            t  v  v  v  t  t        row 1:  t  v  v  t  t  t
    visual = torch.tensor([[0, 1, 1, 1, 0, 0], [0, 1, 1, 0, 0, 0]], dtype=torch.bool)
    kept = build_kept(visual, [torch.tensor([3]), torch.tensor([2])])
    # row 0 keeps 0,3,4,5; row 1 keeps 0,2,3,4,5 -> M = 5, row 0 gets one filler in front
    assert kept.index.tolist() == [[0, 0, 3, 4, 5], [0, 2, 3, 4, 5]]
    assert kept.real.tolist() == [[False, True, True, True, True], [True] * 5]
    assert kept.visual.tolist() == [[False, False, True, False, False], [False, True, False, False, False]]
    assert kept.dropped.tolist() == [2, 1]
    assert kept.dropped_before.tolist() == [[0, 0, 2, 2, 2], [0, 1, 1, 1, 1]]
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]])
    assert kept.padding(mask).tolist() == [[False, True, True, True, True], [False, True, True, True, True]]
    assert kept.n == 6 and kept.m == 5


def test_take_broadcasts_a_shared_batch_axis_and_leading_axes():
    index = torch.tensor([[0, 2], [1, 3]])
    pos = torch.arange(4)[None]  # [1, N] shared by both rows
    assert take(pos, index, -1).tolist() == [[0, 2], [1, 3]]
    mrope = torch.arange(3 * 2 * 4).view(3, 2, 4)  # [3, B, N]
    assert take(mrope, index, -1)[:, 1].tolist() == [[5, 7], [13, 15], [21, 23]]
    cos = torch.arange(2 * 4 * 2).view(2, 4, 2).float()  # [B, N, d]
    assert take(cos, index, -2)[1].tolist() == [[10.0, 11.0], [14.0, 15.0]]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=6, max_size=6), min_size=1, max_size=3), st.data())
def test_every_nonvisual_and_chosen_token_kept_in_order(rows, data):
    visual = torch.tensor(rows, dtype=torch.bool)
    chosen = []
    for row in visual:
        pos = row.nonzero().flatten().tolist()
        chosen.append(torch.tensor(sorted(data.draw(st.sets(st.sampled_from(pos)) if pos else st.just(set()))), dtype=torch.long))
    kept = build_kept(visual, chosen)
    for b in range(len(rows)):
        real = kept.index[b][kept.real[b]].tolist()
        expect = sorted(set((~visual[b]).nonzero().flatten().tolist()) | set(chosen[b].tolist()))
        assert real == expect
        assert not kept.real[b][kept.m - len(real):].logical_not().any()  # fillers only in front
        assert kept.visual[b].sum() == len(chosen[b])
        assert int(kept.dropped[b]) == int(visual[b].sum()) - len(chosen[b])

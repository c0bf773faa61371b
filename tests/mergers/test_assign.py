"""`assign` merge: every dropped token joins one kept token (sizes for proportional attention), worked by hand."""

from __future__ import annotations

import pytest
import torch

import tokcompress
from tokcompress import SpecError, VisualTokens
from tokcompress.errors import StageError
from tokcompress.layout import Grid, Layout, OffGrid
from tokcompress.mergers import Merge, Merger

# Six tokens. Unit directions: t0, t3 ~ x-axis, t1, t4 ~ y-axis, t2 ~ the diagonal, t5 exactly between x and y.
FEATURES = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [3.0, 0.2], [0.1, 1.0], [1.0, 1.0]]])


def pruner(selector="uniform", **merger) -> tokcompress.Pruner:
    return tokcompress.build_pruner({"apply": {"placement": "none"}, "selector": selector,
                                     "merger": {"name": "assign", **merger}})


def keep(indices, **merger):
    """The `assign` merge of FEATURES for a given kept set (the merger called directly, as the pipeline does)."""
    from tokcompress.mergers.assign import AssignMerger

    m = AssignMerger(AssignMerger.Params(**merger))
    return m.merge(VisualTokens(FEATURES, layout=Layout.grid(2, 3)), torch.tensor([indices]), None, None)


def test_cosine_assigns_each_dropped_token_to_its_most_similar_kept_token():
    # kept t0 (x-axis), t1 (y-axis), t2 (diagonal). t3 = (3, 0.2): cos 0.998 with t0 -> slot 0;
    # t4 = (0.1, 1): cos 0.995 with t1 -> slot 1; t5 = (1, 1) equals t2 -> slot 2.
    out = keep([0, 1, 2])
    assert isinstance(out, Merge)
    assert out.assignment.tolist() == [[0, 1, 2, 0, 1, 2]]
    assert not out.merged.any()
    assert torch.equal(out.features, FEATURES[:, :3])


def test_cosine_ties_go_to_the_first_kept_token():
    # kept t0 (x) and t1 (y) only: t5 = (1, 1) and t2 = (1, 1) are at 45 degrees from both -> slot 0 (first).
    out = keep([0, 1])
    assert out.assignment.tolist() == [[0, 1, 0, 0, 1, 0]]


def test_values_mean_is_the_mean_over_each_group():
    # groups: slot 0 = {t0, t3}, slot 1 = {t1, t4}, slot 2 = {t2, t5}
    out = keep([0, 1, 2], values="mean")
    expect = [[[2.0, 0.1], [0.05, 1.5], [1.0, 1.0]]]
    torch.testing.assert_close(out.features, torch.tensor(expect))
    assert out.merged.tolist() == [[True, True, True]]


def test_position_assigns_to_the_nearest_kept_cell_on_the_grid():
    # 2x3 grid: t0 t1 t2 / t3 t4 t5. Kept t0 (0, 0) and t5 (1, 2). t1 (0, 1): d2 1 to t0, 2 to t5 -> slot 0;
    # t2 (0, 2): d2 4 to t0, 1 to t5 -> slot 1; t3 (1, 0): 1 vs 4 -> slot 0; t4 (1, 1): 2 vs 1 -> slot 1.
    out = keep([0, 5], by="position")
    assert out.assignment.tolist() == [[0, 0, 1, 0, 1, 1]]


def test_position_ties_go_to_the_first_and_segments_stay_apart():
    # Two 1x3 grids (t0 t1 t2 | t3 t4 t5) and an off-grid token t6. Kept t0, t2 (first grid) and t4.
    # t1 is at distance 1 from both t0 and t2 -> slot 0 (first); t3, t5 are on the second grid -> t4's slot 2,
    # although t2 is closer in sequence order to t3; t6 is off the grid -> nearest kept in sequence order: t4.
    feats = torch.randn(1, 7, 3)
    layout = Layout((Grid(1, 3), Grid(1, 3), OffGrid(1)))
    from tokcompress.mergers.assign import AssignMerger

    m = AssignMerger(AssignMerger.Params(by="position"))
    out = m.merge(VisualTokens(feats, layout=layout), torch.tensor([[0, 2, 4]]), None, None)
    assert out.assignment.tolist() == [[0, 0, 1, 2, 2, 2, 2]]


def test_pipeline_sizes_sum_to_the_row_count_and_padding_is_unassigned():
    feats = torch.randn(2, 8, 4)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 6:] = False
    sel = pruner().prune(VisualTokens(feats, mask=mask), keep=[3, 2])
    assert sel.sizes.sum(dim=1).tolist() == [8.0, 6.0]
    assert sel.sizes[1, 2].item() == 0  # padding slot of the row that keeps 2
    assert sel.assignment[1, 6:].tolist() == [-1, -1]
    assert (sel.sizes[sel.mask] >= 1).all()
    # every kept token stands for itself
    for b in range(2):
        assert torch.equal(sel.assignment[b, sel.row(b)], torch.arange(len(sel.row(b))))


def test_keep_all_has_every_size_one_and_plain_pruners_have_none():
    feats = torch.randn(1, 6, 4)
    sel = pruner().prune(VisualTokens(feats), keep=6)
    assert sel.sizes.tolist() == [[1.0] * 6] and not sel.merged.any()
    plain = tokcompress.build_pruner({"apply": {"placement": "none"}, "selector": "uniform"})
    assert plain.prune(VisualTokens(feats), keep=3).sizes is None


def test_uniform_on_a_grid_gives_equal_groups():
    # 4x4 grid, uniform keeps column 2 of every row (2, 6, 10, 14): by position each row is one group of 4.
    sel = pruner(by="position").prune(VisualTokens(torch.randn(1, 16, 2), layout=Layout.grid(4)), keep=4)
    assert sel.indices.tolist() == [[2, 6, 10, 14]]
    assert sel.sizes.tolist() == [[4.0, 4.0, 4.0, 4.0]]
    assert sel.assignment.tolist() == [[0] * 4 + [1] * 4 + [2] * 4 + [3] * 4]


def test_a_merger_that_reassigns_a_kept_token_is_refused():
    class Bad(Merger):
        name = "bad"

        def merge(self, tokens, keep, roles, scores):
            feats = torch.gather(tokens.features, 1, keep.unsqueeze(-1).expand(-1, -1, tokens.features.shape[-1]))
            return Merge(feats, torch.zeros_like(keep, dtype=torch.bool), torch.zeros_like(tokens.features[..., 0]).long())

    p = tokcompress.build_pruner({"apply": {"placement": "none"}, "selector": "uniform"})
    p.merger = Bad()
    with pytest.raises(StageError, match=r"assigned a kept token to another kept slot"):
        p.prune(VisualTokens(torch.randn(1, 6, 2)), keep=3)


def test_every_preset_takes_it_by_adding_a_merger_block():
    for preset in ("d2pruner", "fastv", "divprune", "uniform"):
        p = tokcompress.build_pruner({"extends": preset, "merger": {"name": "assign", "by": "position"}})
        assert p.merger.name == "assign" and p.merger.size_bias()
    # DART compares normed features: sizes and bias are fine, a value merge in the normed space is not
    assert tokcompress.build_pruner({"extends": "dart", "merger": "assign"}).merger.name == "assign"
    with pytest.raises(SpecError, match=r"features 'normed' cannot be combined with a merger .*merger 'assign'.*values: keep"):
        tokcompress.load_spec({"extends": "dart", "merger": {"name": "assign", "values": "mean"}})
    with pytest.raises(SpecError, match=r"merger 'assign' .* not supported with placement 'vision'"):
        tokcompress.load_spec({"extends": "visionzip", "merger": "assign"})
    with pytest.raises(SpecError, match=r"merger 'assign' needs VisualTokens.keys"):
        tokcompress.load_spec({"extends": "divprune", "merger": {"name": "assign", "source": "keys"}})

"""The pipeline: budgets, tie rule, determinism, and loud failures for bad input or misbehaving stages."""

from __future__ import annotations

import pytest
import torch

import tokcompress
from tokcompress import InputError, SpecError, StageError, VisualTokens, resolve_budget
from tokcompress.graphs import CosineGraphBuilder
from tokcompress.pruner import Pruner
from tokcompress.scorers import Scorer
from tokcompress.selectors import Selector, TopKSelector

SPEC = tokcompress.PrunerSpec()  # plain base spec for hand-assembled pruners


def tokens_with(attention, **kw):
    attention = torch.as_tensor(attention, dtype=torch.float32)
    return VisualTokens(torch.randn(*attention.shape, 3), attention=attention, **kw)


# -- budgets --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n, keep, ratio, expected",
    [(576, 64, None, 64), (576, 1000, None, 576), (576, None, 0.25, 144), (576, None, 0.111, 63),
     (576, None, 64 / 576, 64), (576, None, 1.0, 576), (10, None, 0.01, 1), (2880, None, 0.1, 288)],
)
def test_budget_rounding_rule(n, keep, ratio, expected):
    assert resolve_budget(n, keep, ratio) == expected


@pytest.mark.parametrize(
    "keep, ratio, message",
    [(0, None, "keep must be >= 1, got 0"), (-3, None, "keep must be >= 1, got -3"),
     (2.5, None, r"keep must be an int, got 2.5 \(float\)"), (True, None, "keep must be an int"),
     (None, 0.0, r"ratio must be a number in \(0, 1\], got 0.0"), (None, 1.5, r"ratio must be a number in \(0, 1\], got 1.5"),
     (None, None, "pass exactly one of keep= or ratio="), (3, 0.5, "pass exactly one of keep= or ratio=")],
)
def test_bad_budgets_are_refused(keep, ratio, message):
    pruner = tokcompress.build_pruner("fastv")
    with pytest.raises(InputError, match=message):
        pruner.select(tokens_with(torch.rand(1, 8)), keep=keep, ratio=ratio)


# -- selection ------------------------------------------------------------------------
def test_topk_hand_worked_with_ties_to_the_lower_index():
    pruner = tokcompress.build_pruner("fastv")
    att = [[0.1, 0.5, 0.3, 0.5, 0.0, 0.3], [0.2, 0.2, 0.2, 0.2, 0.9, 0.2]]
    # row 0: 0.5@1, 0.5@3, then the 0.3 tie -> index 2 before 5; row 1: 0.9@4, then ties -> 0, 1
    assert pruner.select(tokens_with(att), keep=3).tolist() == [[1, 2, 3], [0, 1, 4]]


def test_keep_at_or_above_n_keeps_everything_in_order():
    pruner = tokcompress.build_pruner("fastv")
    t = tokens_with(torch.rand(2, 5))
    for keep in (5, 6, 100):
        assert pruner.select(t, keep=keep).tolist() == [list(range(5))] * 2


def test_same_input_same_output():
    pruner = tokcompress.build_pruner("random")
    t = VisualTokens(torch.randn(3, 50, 4))
    assert torch.equal(pruner.select(t, keep=7), pruner.select(t, keep=7))


def test_ragged_batch_never_selects_padding_and_refuses_unequal_counts():
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    att = torch.tensor([[0.1] * 6, [0.1, 0.1, 0.1, 0.1, 0.9, 0.9]])
    t = VisualTokens(torch.randn(2, 6, 3), attention=att, mask=mask)
    pruner = tokcompress.build_pruner("fastv")
    assert pruner.select(t, keep=2).tolist() == [[0, 1], [0, 1]]
    with pytest.raises(InputError, match=r"rows would keep different numbers of tokens \(\[2, 3\]\) for valid counts \[6, 4\]"):
        pruner.select(t, ratio=0.5)  # floor(6 * 0.5) = 3, floor(4 * 0.5) = 2
    with pytest.raises(InputError, match=r"valid counts \[6, 4\] with keep=5"):
        pruner.select(t, keep=5)


def test_missing_probe_names_the_stage_and_the_field():
    with pytest.raises(InputError, match=r"scorer 'attention' \(AttentionScorer\) needs VisualTokens.attention"):
        tokcompress.build_pruner("fastv").select(VisualTokens(torch.randn(1, 8, 3)), keep=2)


def test_cosine_graph_requires_its_source_field():
    pruner = Pruner(SPEC, selector=TopKSelector(), scorer=tokcompress.scorers.FeatureNormScorer(),
                    graph=CosineGraphBuilder(CosineGraphBuilder.Params(source="keys")))
    with pytest.raises(InputError, match=r"graph 'cosine' .* needs VisualTokens.keys"):
        pruner.select(VisualTokens(torch.randn(1, 8, 3)), keep=2)


# -- composition ----------------------------------------------------------------------
def test_selector_that_ranks_needs_a_scorer():
    with pytest.raises(SpecError, match=r"selector 'topk' .* ranks tokens by score but the spec has no scorer"):
        tokcompress.build_pruner({"selector": "topk"})


class NeedsAdjacency(TopKSelector):
    name = "needs_adjacency"
    needs_graph = "adjacency"


def test_selector_that_needs_a_graph_is_refused_without_one_or_with_the_wrong_kind():
    scorer = tokcompress.scorers.AttentionScorer()
    with pytest.raises(SpecError, match=r"needs a adjacency graph but the spec has no 'graph' block"):
        Pruner(SPEC, selector=NeedsAdjacency(), scorer=scorer)
    with pytest.raises(SpecError, match=r"needs a adjacency graph but graph 'cosine' .* provides a similarity graph"):
        Pruner(SPEC, selector=NeedsAdjacency(), scorer=scorer, graph=CosineGraphBuilder())


def test_every_budget_form_keeps_the_count_budget_resolves():
    """A plain ``keep`` count takes a short path past `Budget`; it keeps what `Budget` resolves, at and
    beyond the row size included, and a ratio or per-row form keeps the same as that count."""
    pruner = tokcompress.build_pruner("fastv")
    t = tokens_with(torch.rand(2, 12))
    for keep in (1, 5, 11, 12, 13, 100):
        expected = tokcompress.Budget(keep=keep).counts([12, 12])
        assert list(pruner.select(t, keep=keep).shape) == [2, expected[0]], keep
        assert torch.equal(pruner.select(t, keep=keep), pruner.prune(t, keep=[keep, keep]).indices), keep
    assert torch.equal(pruner.select(t, keep=3), pruner.select(t, ratio=0.25))


def test_select_returns_the_kept_indices_without_running_the_merger():
    """A merger changes no index: `select` skips it, `prune` runs it (and its contract is checked there)."""
    from tokcompress.mergers import Merger

    class Refuses(Merger):
        name = "refuses"

        def merge(self, tokens, keep, roles, scores):
            raise RuntimeError("merger ran")

    pruner = tokcompress.build_pruner({"apply": {"placement": "none"}, "selector": "uniform"})
    pruner.merger = Refuses()
    tokens = VisualTokens(torch.randn(1, 6, 2))
    assert pruner.select(tokens, keep=3).tolist() == [[1, 3, 5]]  # uniform: evenly spaced
    with pytest.raises(RuntimeError, match="merger ran"):
        pruner.prune(tokens, keep=3)


# -- misbehaving plugins ----------------------------------------------------------------
class ScoreWith(Scorer):
    name = "fixed"

    def __init__(self, value):
        super().__init__()
        self.value = value

    def score(self, tokens):
        return self.value


class PickWith(Selector):
    name = "broken"

    def needs_scores(self):
        return False

    def __init__(self, value):
        super().__init__()
        self.value = value

    def select(self, tokens, scores, graph, keep):
        return self.value


@pytest.mark.parametrize(
    "scorer, selector, message",
    [
        (ScoreWith(torch.rand(1, 3)), TopKSelector(), r"scorer 'fixed' \(ScoreWith\) returned scores \(1, 3\) .*expected a float tensor of shape \[1, 6\]"),
        (ScoreWith(torch.tensor([[0.1, float("nan"), 0, 0, 0, 0]])), TopKSelector(), r"scorer 'fixed' \(ScoreWith\) returned non-finite scores"),
        (None, PickWith([[0, 1]]), r"selector 'broken' \(PickWith\) returned indices list"),
        (None, PickWith(torch.tensor([[0, 1, 2]])), r"returned indices \(1, 3\) torch.int64; expected a LongTensor of shape \[1, 2\]"),
        (None, PickWith(torch.tensor([[0, 6]])), r"selector 'broken' \(PickWith\) returned indices outside \[0, 6\)"),
        (None, PickWith(torch.tensor([[3, 3]])), r"selector 'broken' \(PickWith\) returned the same index twice"),
        (None, PickWith(torch.tensor([[2, -1]])), r"returned indices outside \[0, 6\)"),
        (None, PickWith(torch.tensor([[5, 5]])), r"returned the same index twice"),
    ],
)
def test_misbehaving_stage_is_named(scorer, selector, message):
    pruner = Pruner(SPEC, selector=selector, scorer=scorer)
    with pytest.raises(StageError, match=message):
        pruner.select(VisualTokens(torch.randn(1, 6, 3)), keep=2)


def test_selecting_padding_is_caught():
    pruner = Pruner(SPEC, selector=PickWith(torch.tensor([[0, 5]])))
    mask = torch.tensor([[True] * 5 + [False]])
    with pytest.raises(StageError, match=r"selected padding tokens"):
        pruner.select(VisualTokens(torch.randn(1, 6, 3), mask=mask), keep=2)


def test_indices_come_back_sorted_whatever_order_the_selector_used():
    pruner = Pruner(SPEC, selector=PickWith(torch.tensor([[4, 0, 2]])))
    assert pruner.select(VisualTokens(torch.randn(1, 6, 3)), keep=3).tolist() == [[0, 2, 4]]


def test_compress_gathers_features_without_a_merger():
    t = tokens_with([[0.3, 0.1, 0.9, 0.2]])
    out = tokcompress.build_pruner("fastv").compress(t, keep=2)
    assert out.indices.tolist() == [[0, 2]]
    assert torch.equal(out.features, t.features[:, [0, 2]])


def test_non_tokens_input_is_refused():
    with pytest.raises(InputError, match="select expects VisualTokens, got Tensor"):
        tokcompress.build_pruner("fastv").select(torch.randn(1, 4, 3), keep=2)


def test_keep_all_returns_the_input_for_every_preset():
    """Pruner level: keep >= N keeps every token in order with its own features, mergers included."""
    from tokcompress.catalog import get_catalog

    g = torch.Generator().manual_seed(3)
    b, n, d, t = 2, 16, 6, 3
    tokens = VisualTokens(torch.randn(b, n, d, generator=g), attention=torch.rand(b, n, generator=g),
                          keys=torch.randn(b, n, 4, generator=g), image_embeds=torch.randn(b, n, 5, generator=g),
                          text_keys=torch.randn(b, t, 4, generator=g), text_embeds=torch.randn(b, t, 5, generator=g),
                          text_features=torch.randn(b, t, d, generator=g), layout=tokcompress.Layout.grid(4, 4))
    for name in get_catalog().presets:
        out = tokcompress.build_pruner(name).compress(tokens, keep=n)
        assert out.indices.tolist() == [list(range(n))] * b, name
        assert torch.equal(out.features, tokens.features) and not bool(out.merged.any()), name


def test_checks_of_the_picks_cover_every_row():
    pruner = Pruner(SPEC, selector=PickWith(torch.tensor([[0, 1, 2], [4, 1, 4]])))
    with pytest.raises(StageError, match=r"returned the same index twice"):
        pruner.select(VisualTokens(torch.randn(2, 6, 3)), keep=3)
    pruner = Pruner(SPEC, selector=PickWith(torch.tensor([[0, 1, 2], [3, 6, 1]])))
    with pytest.raises(StageError, match=r"outside \[0, 6\)"):
        pruner.select(VisualTokens(torch.randn(2, 6, 3)), keep=3)


def test_roles_follow_their_indices_whether_or_not_the_selector_returns_them_ascending():
    from tokcompress.selectors.base import KEEP, TARGET, Picks

    tokens = VisualTokens(torch.randn(2, 6, 3))
    unsorted = Picks(torch.tensor([[4, 0, 2], [5, 1, 3]]), torch.tensor([[TARGET, KEEP, KEEP], [KEEP, TARGET, KEEP]]))
    out = Pruner(SPEC, selector=PickWith(unsorted)).prune(tokens, keep=3)
    assert out.indices.tolist() == [[0, 2, 4], [1, 3, 5]]
    assert out.roles.tolist() == [[KEEP, KEEP, TARGET], [TARGET, KEEP, KEEP]]
    # ascending picks read off a mask come as a strided view: kept as they are, returned contiguous
    strided = torch.tensor([[0, 1, 0, 3, 0, 4], [0, 0, 0, 2, 0, 5]])[:, 1::2]
    out = Pruner(SPEC, selector=PickWith(Picks(strided, torch.tensor([[KEEP, TARGET, KEEP]] * 2)))).prune(tokens, keep=3)
    assert out.indices.tolist() == [[1, 3, 4], [0, 2, 5]] and out.indices.is_contiguous()
    assert out.roles.tolist() == [[KEEP, TARGET, KEEP]] * 2


class FirstK(PickWith):
    """Keeps the first `keep` tokens of each row; marks the first of them TARGET when `mark`."""

    def select(self, tokens, scores, graph, keep):
        from tokcompress.selectors.base import TARGET, Picks

        idx = torch.arange(keep).expand(tokens.batch_size, keep)
        return Picks(idx, (idx == 0).long() * TARGET) if self.value else idx


def test_roles_and_merge_flags_are_built_only_when_read():
    """Without marked roles or a merger the result carries the indices only; reading `roles` / `merged`
    builds KEEP / False, per-row budgets included; marked roles pass through the row groups."""
    from tokcompress.selectors.base import KEEP, TARGET

    tokens = VisualTokens(torch.randn(2, 6, 3))
    for keep in (3, [3, 2]):
        plain = Pruner(SPEC, selector=FirstK(False)).prune(tokens, keep=keep)
        assert plain.marked_roles is None and plain.merged_flags is None, keep
        assert plain.roles.shape == plain.indices.shape and (plain.roles == KEEP).all()
        assert plain.merged.shape == plain.indices.shape and not plain.merged.any()
        marked = Pruner(SPEC, selector=FirstK(True)).prune(tokens, keep=keep)
        assert marked.marked_roles is not None and marked.merged_flags is None, keep
    assert marked.roles.tolist() == [[TARGET, KEEP, KEEP], [TARGET, KEEP, KEEP]]  # row 1 keeps 2, padded with KEEP


class DebiasWith(tokcompress.debiasers.Debiaser):
    name = "shift"

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def debias(self, scores, tokens):
        return self.fn(scores)


def _nan_at(i: int) -> torch.Tensor:
    t = torch.rand(1, 6)
    t[0, i] = float("nan")
    return t


@pytest.mark.parametrize("scorer, debias, blamed", [
    (_nan_at(1), lambda s: s + 1, r"scorer 'fixed' \(ScoreWith\) returned non-finite scores \(NaN/inf\) at \[0, 1\]"),
    (torch.rand(1, 6), lambda s: s / 0 * s, r"debiaser 'shift' \(DebiasWith\) returned non-finite scores"),
    (torch.rand(1, 6), lambda s: torch.full_like(s, 1).index_fill_(1, torch.tensor([4]), float("-inf")),
     r"debiaser 'shift' .* at \[0, 4\]"),
])
def test_non_finite_scores_are_blamed_on_the_stage_that_produced_them(scorer, debias, blamed):
    pruner = Pruner(SPEC, selector=TopKSelector(), scorer=ScoreWith(scorer), debiaser=DebiasWith(debias))
    with pytest.raises(StageError, match=blamed):
        pruner.select(VisualTokens(torch.randn(1, 6, 3)), keep=2)


def test_a_debiaser_failing_on_non_finite_scores_is_traced_to_the_scorer():
    def refuse(s):
        raise ValueError("cannot debias NaN")

    pruner = Pruner(SPEC, selector=TopKSelector(), scorer=ScoreWith(_nan_at(3)), debiaser=DebiasWith(refuse))
    with pytest.raises(StageError, match=r"scorer 'fixed' .* at \[0, 3\]"):
        pruner.select(VisualTokens(torch.randn(1, 6, 3)), keep=2)
    pruner = Pruner(SPEC, selector=TopKSelector(), scorer=ScoreWith(torch.rand(1, 6)), debiaser=DebiasWith(refuse))
    with pytest.raises(ValueError, match="cannot debias NaN"):  # finite input: the debiaser's own error
        pruner.select(VisualTokens(torch.randn(1, 6, 3)), keep=2)

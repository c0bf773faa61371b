"""`dpp` (CDPruner): greedy fast MAP of the DPP with kernel diag(r) S diag(r), worked by hand."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tokcompress
from tokcompress import SpecError, VisualTokens

# Unit vectors: S01 = 0.6, S02 = 0, S03 = 0.8, S12 = 0.64, S13 = 0.48, S23 = 0.36.
X = torch.tensor([[[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.8, 0.6], [0.8, 0.0, 0.6]]])
R = torch.tensor([[1.0, 0.9, 0.8, 0.85]])


def dpp(**selector) -> tokcompress.Pruner:
    return tokcompress.build_pruner({"scorer": "attention", "graph": "cosine", "selector": {"name": "dpp", **selector}})


def test_greedy_map_by_hand():
    # d2 = r^2 = [1, .81, .64, .7225] -> pick t0.
    # e = L_0. / 1 = r0 * S_0. * r = [1, .54, 0, .68]; d2 = [-, .81-.2916, .64-0, .7225-.4624] = [-, .5184, .64, .2601]
    #   -> pick t2 (.64), although t1 and t3 score higher: both resemble t0.
    # c_2 = [0]; L_2. = .8 * [0, .64*.9, .8, .36*.85] = [0, .4608, .64, .2448]; e = L_2. / sqrt(.64)
    #   = [0, .576, .8, .306]; d2 = [-, .5184-.331776, -, .2601-.093636] = [-, .186624, -, .166464] -> t1
    t = VisualTokens(X, attention=R)
    assert dpp().select(t, keep=2).tolist() == [[0, 2]]
    assert dpp().select(t, keep=3).tolist() == [[0, 1, 2]]
    # top-k by the same scores keeps the similar tokens instead
    assert tokcompress.build_pruner("fastv").select(t, keep=3).tolist() == [[0, 1, 3]]


def test_exhausted_kernel_falls_back_to_descending_score():
    # three copies of (1, 0) with r = [.5, 1, .75]: pick t1 (d2 = 1); e = L_1. / 1 = r exactly, so every
    # d2 = r^2 - r^2 = 0: no positive d2 is left, the rest follows the scores: t2 (.75), then t0
    t = VisualTokens(torch.tensor([[[1.0, 0.0]] * 3]), attention=torch.tensor([[0.5, 1.0, 0.75]]))
    assert dpp().select(t, keep=2).tolist() == [[1, 2]]
    assert dpp().select(t, keep=3).tolist() == [[0, 1, 2]]


def test_theta_reweights_relevance_as_exp_alpha_r():
    # alpha = theta / (2 (1 - theta)): theta = 0.5 -> 0.5, theta = 0.8 -> 2
    g = torch.Generator().manual_seed(3)
    x, r = torch.randn(2, 30, 8, generator=g), torch.rand(2, 30, generator=g)
    for theta, alpha in ((0.5, 0.5), (0.8, 2.0)):
        with_theta = dpp(theta=theta).select(VisualTokens(x, attention=r), keep=9)
        pre_weighted = dpp().select(VisualTokens(x, attention=torch.exp(alpha * r)), keep=9)
        assert torch.equal(with_theta, pre_weighted)


def test_ties_on_d2_go_to_the_lower_index():
    # orthogonal tokens with equal scores: every d2 stays 1 until picked -> picks in index order
    t = VisualTokens(torch.eye(4)[None], attention=torch.ones(1, 4))
    assert dpp().select(t, keep=2).tolist() == [[0, 1]]


def test_padding_is_never_picked_even_with_nan_features():
    x = torch.cat([X, X])
    x[1, 0] = float("nan")  # row 1 pads t0
    t = VisualTokens(x, attention=torch.cat([R, R]), mask=torch.tensor([[True] * 4, [False, True, True, True]]))
    # row 1 without t0: d2 = [.81, .64, .7225] -> t1; then t2: .64 - (.9*.64*.8/.9)^2 = .64 - .262144 = .377856,
    # t3: .7225 - (.9*.48*.85/.9)^2 = .7225 - .166464 = .556036 -> t3
    assert dpp().select(t, keep=2).tolist() == [[0, 2], [1, 3]]


def test_dpp_needs_scores_and_a_similarity_graph():
    with pytest.raises(SpecError, match=r"selector 'dpp'.*no scorer"):
        tokcompress.build_pruner({"graph": "cosine", "selector": "dpp"})
    with pytest.raises(SpecError, match=r"selector 'dpp'.*needs a similarity graph but the spec has no 'graph' block"):
        tokcompress.build_pruner({"scorer": "attention", "selector": "dpp"})


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 3), n=st.integers(2, 24), data=st.data())
def test_dense_and_on_demand_rows_agree_while_the_kernel_has_full_rank(seed, b, n, data):
    g = torch.Generator().manual_seed(seed)
    t = VisualTokens(torch.randn(b, n, n + 4, generator=g), attention=torch.rand(b, n, generator=g) + 0.1)
    keep = data.draw(st.integers(1, n - 1))
    assert torch.equal(dpp().select(t, keep=keep), dpp(dense_max_bytes=0).select(t, keep=keep))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 14), data=st.data())
def test_each_pick_maximises_the_log_determinant_gain(seed, n, data):
    # the greedy MAP by definition, in float64: add the token that maximises log det(L_Y) each time
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(n, n + 2, generator=g, dtype=torch.float64), dim=-1)
    r = torch.rand(n, generator=g, dtype=torch.float64) + 0.2
    keep = data.draw(st.integers(2, n - 1))
    L = r[:, None] * (x @ x.T) * r[None, :]
    picked: list[int] = []
    for _ in range(keep):
        rest = [i for i in range(n) if i not in picked]
        gains = sorted(((torch.logdet(L[picked + [i]][:, picked + [i]]).item(), -i) for i in rest), reverse=True)
        assume(len(gains) == 1 or gains[0][0] - gains[1][0] > 1e-4)  # fp32 cannot separate closer calls
        picked.append(-gains[0][1])
    chosen = dpp().select(VisualTokens(x[None].float(), attention=r[None].float()), keep=keep)[0].tolist()
    assert chosen == sorted(picked)

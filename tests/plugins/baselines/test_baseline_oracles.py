"""Index-for-index agreement with direct, dense re-statements of each published rule.

Each oracle below restates a reference algorithm as docs (shared baselines reference) describe it,
in the plainest form: the full N x N matrix, Python sets where the reference uses them, ``topk`` and
``argmax`` as the reference calls them. The library must return the same indices on the same fp32
inputs, in its clean modes where they coincide and in its ``*_compat`` modes where they do not.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import tokcompress
from tokcompress import VisualTokens
from tokcompress_baselines.budgets import dart_reference_keep


def dart_oracle(img_keys, txt_keys, hidden, start, token_topk, p_img=4, p_txt=4):
    """DART: L1-norm pivots, a set of absolute positions, per-pivot topk of -cos over the listed pool."""
    n = img_keys.shape[0]
    image = (img_keys.abs().sum(-1).topk(p_img).indices + start).tolist()
    text = (txt_keys.abs().sum(-1).topk(p_txt).indices + start + n).tolist()
    kept = set(image + text)
    pool = set(range(start, start + n)) - set(image)
    listed = list(pool)
    for pivot in list(kept):
        cos = -F.cosine_similarity(hidden[pivot], hidden[listed], dim=-1)
        chosen = [listed[i] for i in cos.topk(token_topk).indices]
        kept.update(chosen)
        pool.difference_update(chosen)
        listed = list(pool)
    kept.difference_update(text)
    return sorted(i - start for i in kept)


def divprune_oracle(x, t):
    """DivPrune: dense 1 - cos; first the largest second-smallest column entry, then max of column minima."""
    unit = x / x.norm(dim=1, keepdim=True)
    dist = 1.0 - unit @ unit.T
    picks: list[int] = []
    for i in range(t):
        scores = dist.topk(2, dim=0, largest=False).values[1] if i == 0 else dist[picks].min(dim=0).values
        picks.append(int(scores.argmax()))
    return sorted(picks)


def cdpruner_oracle(features, image_embeds, text_embeds, t):
    """CDPruner: dense kernel diag(r) S diag(r), r = minmax(mean(-cos)) over the whole tensor, fast greedy MAP."""
    B, N, _ = features.shape
    unit = features / features.norm(dim=-1, keepdim=True)
    sim = unit @ unit.transpose(1, 2)
    ie = image_embeds / image_embeds.norm(dim=-1, keepdim=True)
    te = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
    r = (-(ie @ te.T)).mean(dim=-1)
    r = (r - r.min() + 1e-6) / (r.max() - r.min())
    kernel = r[:, :, None] * sim * r[:, None, :]
    ar = torch.arange(B)
    cis = torch.zeros(t, B, N)
    d2 = torch.diagonal(kernel, dim1=1, dim2=2).clone()
    chosen = torch.empty(t, B, dtype=torch.long)
    for i in range(t):
        j = d2.argmax(dim=-1)
        chosen[i] = j
        e = (kernel[ar, j] - torch.einsum("tb,tbn->bn", cis[:i, ar, j], cis[:i])) / d2[ar, j].sqrt()[:, None]
        cis[i] = e
        d2 -= e**2
        d2[ar, j] = float("-inf")
    return chosen.T.sort(dim=1).values.tolist()


def visionzip_oracle(hidden, cls_attention, keys, dominant, contextual):
    """VisionZip with [CLS] at 0: CLS + top (dominant - 1) patches; strided targets; target + mean."""
    L = hidden.shape[0]
    top = (cls_attention[1:].topk(dominant - 1).indices + 1).tolist()
    dom = sorted([0] + top)
    rest = [i for i in range(L) if i not in dom]
    unit = keys[rest] / keys[rest].norm(dim=-1, keepdim=True)
    step = max(1, len(rest) // contextual)
    targets = list(range(0, len(rest), step))[:contextual]
    others = [i for i in range(len(rest)) if i not in targets]
    assign = (unit[others] @ unit[targets].T).argmax(dim=1)
    merged = {}
    for k, tgt in enumerate(targets):
        members = [rest[others[i]] for i in range(len(others)) if assign[i] == k]
        extra = hidden[members].mean(dim=0) if members else torch.zeros_like(hidden[0])
        merged[rest[tgt]] = hidden[rest[tgt]] + extra
    return sorted(dom + list(merged)), merged


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), start=st.sampled_from([0, 5, 35, 36, 100, 1000]), topk=st.integers(1, 6))
def test_dart_set_compat_matches_the_reference(seed, start, topk):
    g = torch.Generator().manual_seed(seed)
    n, t, d = 72, 9, 16
    img_keys, txt_keys = torch.randn(n, 8, generator=g), torch.randn(t, 8, generator=g)
    hidden = torch.randn(n + t, d, generator=g)
    padded = torch.cat([torch.zeros(start, d), hidden])  # absolute positions, as the reference indexes them
    expected = dart_oracle(img_keys, txt_keys, padded, start, topk)
    tokens = VisualTokens(hidden[None, :n], keys=img_keys[None], text_keys=txt_keys[None], text_features=hidden[None, n:])
    pruner = tokcompress.build_pruner(
        {"extends": "dart", "selector": {"name": "dart_pivots", "pivot_order": "set_compat", "image_start": start, "count_mode": "dart_compat"}}
    )
    assert pruner.select(tokens, keep=4 + 8 * topk)[0].tolist() == expected


def test_dart_reference_count_on_llava_sizes():
    g = torch.Generator().manual_seed(7)
    n, t, d = 576, 30, 32
    img_keys, txt_keys, hidden = torch.randn(n, 8, generator=g), torch.randn(t, 8, generator=g), torch.randn(n + t, d, generator=g)
    expected = dart_oracle(img_keys, txt_keys, torch.cat([torch.zeros(35, d), hidden]), 35, 16)  # TOKEN_TOPK for T = 128
    tokens = VisualTokens(hidden[None, :n], keys=img_keys[None], text_keys=txt_keys[None], text_features=hidden[None, n:])
    pruner = tokcompress.build_pruner(
        {"extends": "dart", "selector": {"name": "dart_pivots", "pivot_order": "set_compat", "image_start": 35, "count_mode": "dart_compat"}}
    )
    assert pruner.select(tokens, keep=dart_reference_keep(n))[0].tolist() == expected


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 64), data=st.data())
def test_divprune_matches_the_reference(seed, n, data):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 24, generator=g)
    t = data.draw(st.integers(1, n - 1))
    assert tokcompress.build_pruner("divprune").select(VisualTokens(x[None]), keep=t)[0].tolist() == divprune_oracle(x, t)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 3), n=st.integers(3, 48), data=st.data())
def test_cdpruner_matches_the_reference(seed, b, n, data):
    g = torch.Generator().manual_seed(seed)
    features, image_embeds, text_embeds = torch.randn(b, n, 64, generator=g), torch.randn(b, n, 12, generator=g), torch.randn(4, 12, generator=g)
    t = data.draw(st.integers(1, n - 1))
    tokens = VisualTokens(features, image_embeds=image_embeds, text_embeds=text_embeds.expand(b, -1, -1))
    # the reference min-maxes over its whole tensor: scope batch (per row when b = 1)
    pruner = tokcompress.build_pruner({"extends": "cdpruner", "scorer": {"name": "text_relevance", "scope": "batch"}})
    assert pruner.select(tokens, keep=t).tolist() == cdpruner_oracle(features, image_embeds, text_embeds, t)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(4, 80), data=st.data())
def test_visionzip_with_cls_matches_the_reference(seed, n, data):
    g = torch.Generator().manual_seed(seed)
    hidden, attention, keys = torch.randn(n, 6, generator=g), torch.rand(n, generator=g), torch.randn(n, 5, generator=g)
    contextual = data.draw(st.integers(1, n - 2))
    dominant = data.draw(st.integers(1, n - 1 - contextual))
    expected, merged = visionzip_oracle(hidden, attention, keys, dominant, contextual)
    split = {"contextual": contextual, "cls_first": True}
    pruner = tokcompress.build_pruner({"scorer": "attention", "selector": {"name": "visionzip", **split}, "merger": "contextual"})
    out = pruner.compress(VisualTokens(hidden[None], attention=attention[None], keys=keys[None]), keep=dominant + contextual)
    assert out.indices[0].tolist() == expected
    for slot, token in enumerate(expected):
        assert torch.allclose(out.features[0, slot], merged.get(token, hidden[token]), atol=1e-5)

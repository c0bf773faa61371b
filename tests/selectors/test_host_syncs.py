"""No selector reads a value on the host once per pick: on a GPU each read is a device synchronisation.

CPU-only machines check this two ways. On the meta device a tensor has a shape and no values, so any host
read raises: `maxmin`, `dpp` and `topk` run their whole selection there (and take the paths they take on a
GPU, which is every path whose device is not the CPU). Every selector, run on CPU, makes the same number of
host reads (item, bool, tolist, nonzero, boolean indexing, ...) for 16 picks as for 48, counted at torch's
dispatcher. With a GPU present, torch's sync debug mode checks the same two things on CUDA tensors.
"""

from __future__ import annotations

import warnings
from collections import Counter

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

import tokcompress
from tokcompress import Layout, VisualTokens
from tokcompress.catalog import get_catalog
from tokcompress_d2pruner import greedy_mis

from test_pick_order import CDPRUNER, DIVPRUNE, picks, with_selector

SELECTORS = sorted(get_catalog().components["selector"])
NEVER_READ = {"maxmin": DIVPRUNE, "maxmin-rows": with_selector(DIVPRUNE, dense_max_bytes=0), "dpp": CDPRUNER,
              "topk": {"scorer": "attention", "selector": "topk"}}


def _spec(selector: str) -> dict:
    cls = get_catalog().components["selector"][selector].cls
    spec: dict = {"selector": selector}
    if cls.needs_scores:
        spec["scorer"] = "attention"
    if cls.needs_graph:
        graphs = get_catalog().components["graph"]
        spec["graph"] = next(n for n, e in graphs.items() if e.cls.provides == cls.needs_graph)
    return spec


def _tokens(device: str) -> VisualTokens:
    g = torch.Generator().manual_seed(0)
    b, n, d = 2, 256, 64  # random 64-d features: no cosine near 0.8, so a MIS finishes in one window

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(device)

    return VisualTokens(
        randn(b, n, d), attention=torch.rand(b, n, generator=g).to(device), keys=randn(b, n, 8),
        image_embeds=randn(b, n, 8), text_keys=randn(b, 4, 8), text_embeds=randn(b, 4, 8),
        text_features=randn(b, 4, d), layout=Layout.grid(16, 16), check_values=device == "cpu",
    )


def _stage_inputs(pruner, tokens: VisualTokens):
    scores = pruner.scorer.score(tokens) if pruner.scorer is not None else None
    if pruner.debiaser is not None:
        scores = pruner.debiaser.debias(scores, tokens)
    return scores, pruner.graph.build(tokens) if pruner.graph is not None else None


# -- without a GPU -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(NEVER_READ))
def test_diversity_selection_runs_without_values(name):
    """Meta tensors have no values: a selection that finishes there never read one on the host."""
    p = tokcompress.build_pruner(NEVER_READ[name])
    tokens = _tokens("meta")
    got = p.selector.select(tokens, *_stage_inputs(p, tokens), 24)
    assert got.device.type == "meta" and got.shape == (2, 24)


@pytest.mark.parametrize("read", [lambda x: bool(x.any()), lambda x: x.tolist(), lambda x: x.nonzero(),
                                  lambda x: x[x > 0]], ids=["bool", "tolist", "nonzero", "mask-index"])
def test_a_host_read_fails_on_the_meta_device(read):
    """The check above could fail: every kind of host read raises on meta tensors."""
    with pytest.raises((RuntimeError, NotImplementedError)):
        read(torch.zeros(2, 3, device="meta"))


class HostReads(TorchDispatchMode):
    """Counts the operations that copy a value to the host or size a result by the data (a device
    synchronisation on a GPU), at torch's dispatcher; `tolist` / `cpu` / `numpy` are seen one level up."""

    SIZED_BY_DATA = {"nonzero", "masked_select", "_unique2", "unique_dim", "unique_consecutive", "repeat_interleave"}

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name == "_local_scalar_dense" or name in self.SIZED_BY_DATA or (name in ("index", "index_put", "index_put_")
                                                                           and _boolean_index(args[1])):
            self.seen[name] += 1
        return func(*args, **(kwargs or {}))


class _Copies(TorchFunctionMode):
    def __init__(self, reads: HostReads) -> None:
        super().__init__()
        self.reads = reads

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("tolist", "cpu", "numpy"):
            self.reads.seen[func.__name__] += 1
        return func(*args, **(kwargs or {}))


def _boolean_index(indices) -> bool:
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices or ())


def _host_reads(fn) -> Counter[str]:
    reads = HostReads()
    with _Copies(reads), reads:
        fn()
    return reads.seen


def test_host_reads_are_counted():
    """The counter sees every kind of read it claims to."""
    x = torch.arange(6.0)
    seen = _host_reads(lambda: (x.sum().item(), bool(x.any()), x.tolist(), x[x > 2], x.nonzero(), int(x.max())))
    assert seen == Counter({"_local_scalar_dense": 3, "tolist": 1, "index": 1, "nonzero": 1})


@pytest.mark.parametrize("selector", SELECTORS)
def test_host_reads_do_not_grow_with_the_picks(selector, monkeypatch):
    """On CPU as a GPU runs them: greedy MIS without its CPU-only early stop (a free read there), DPP on its
    dense kernel (the path off the CPU)."""
    monkeypatch.setattr(greedy_mis, "stops_when_done", lambda device: False)
    spec = _spec(selector)
    if selector == "dpp":
        spec = with_selector({**spec, "selector": {"name": "dpp"}}, dense_keep_ratio=0.0)
    p = tokcompress.build_pruner(spec)
    tokens = _tokens("cpu")
    inputs = _stage_inputs(p, tokens)
    few, many = (_host_reads(lambda k=k: p.selector.select(tokens, *inputs, k)) for k in (16, 48))
    assert few == many, f"{selector}: host reads {dict(few)} for 16 picks, {dict(many)} for 48"
    if selector in NEVER_READ:
        assert not few, f"{selector} read values on the host: {dict(few)}"


# -- with a GPU ----------------------------------------------------------------------------------------
def _syncs(fn) -> int:
    """Synchronising CUDA calls made by `fn` (torch's sync debug mode, counted as warnings)."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("selector", SELECTORS)
def test_cuda_host_syncs_do_not_grow_with_the_picks(selector):
    tokens = _tokens("cuda")
    pruner = tokcompress.build_pruner(_spec(selector))
    pruner.select(tokens, keep=16)  # warm-up: lazy initialisation may synchronise once
    few, many = (_syncs(lambda k=k: pruner.select(tokens, keep=k)) for k in (16, 48))
    assert few == many, f"{selector}: {few} host syncs for 16 picks, {many} for 48"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["maxmin", "dpp", "maxmin-rows"])
def test_cuda_diversity_selection_never_synchronises(name):
    spec = NEVER_READ[name]
    tokens = _tokens("cuda")
    p = tokcompress.build_pruner(spec)
    inputs = _stage_inputs(p, tokens)
    expected = picks(spec, VisualTokens(tokens.features.cpu(), attention=tokens.attention.cpu()), 24)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = p.selector.select(tokens, *inputs, 24)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert got.is_cuda and got.shape == (2, 24)
    for row, ref in zip(got.cpu().tolist(), expected.tolist()):  # GPU rounding may break a near-tie differently
        assert len(set(row) & set(ref)) >= 20

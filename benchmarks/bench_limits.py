"""DivPrune and CDPruner against their physical limit (one N x N similarity product) and a plain dense version.

    python benchmarks/bench_limits.py            # N in {576, 2880, 16384}, batch 1 and 8, D = 4096 (minutes)
    python benchmarks/bench_limits.py --quick    # N in {576, 2880} only

Per method and (N, B): our time (``pruner.select``: scores, graph, selection, checks), the time of the
bare product ``X @ X.T`` of the same shape (the limit: both methods need every pairwise similarity or,
for CDPruner, at least the rows of the picks), their ratio, and a straightforward dense implementation
written here as the authors write it, after asserting it returns the same indices:

- DivPrune: ``1 - cosine`` as a full N x N matrix; first pick the largest second-smallest column
  entry (``topk(2, dim=0, largest=False)``), then each pick the argmax of the column minima over the
  rows of the picks so far (``index_select`` + ``min(dim=0)``, as in the reference).
- CDPruner: ``kernel = relevance[:, None] * sim * relevance[None, :]`` in full, then fast greedy MAP
  with ``cis`` / ``di2s`` (an ``einsum`` over the earlier picks per step). It takes the relevance the
  library's scorer computed, so both select from the same kernel.

Inputs: Gaussian features (D = 4096), CLIP-like embeddings 768 wide, 32 text tokens; keep 64, 288 and
1638 as benchmarks/bench_d2pruner.py. Batches: the limit at B > 1 is B products of one row each (the
same multiply-adds without a B x N x N output); the straightforward version runs row by row, and is
skipped when its two N x N matrices would exceed ``--dense-max-gib`` or, at B > 1, when B times its
B = 1 time exceeds ``--max-seconds``.

Times: the implementations of a cell run in interleaved rounds, the order reversed every other round,
and ratios are medians of the per-round ratios (the machine is shared and its load drifts). A cell
whose product is expected to take longer than ``--time-limit`` runs each implementation once, in the
memory-measuring child, and is marked ``*``; its limit is shared by both methods.

Peak extra memory: each implementation's second call in a forked child (benchmarks/child_memory.py;
the first call pays one-time start-up costs). Threads: 1
by default (the machine is shared; two OpenMP threads on busy cores spend milliseconds in barriers).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import tokcompress
from tokcompress import VisualTokens

sys.path.insert(0, str(Path(__file__).parent))
from child_memory import measure_in_child  # noqa: E402  (the benchmarks' shared memory measurement)

FULL_N = (576, 2880, 16384)
KEEP = {576: 64, 2880: 288, 16384: 1638}


# -- the straightforward dense implementations ------------------------------------------------
def divprune_dense(x: torch.Tensor, keep: int) -> list[int]:
    """DivPrune's reference on one row ``[N, D]``: the full distance matrix, then the pick loop."""
    unit = x / x.norm(dim=1, keepdim=True)
    dist = 1.0 - unit @ unit.T
    picks = torch.empty(keep, dtype=torch.long)
    for i in range(keep):
        if i == 0:
            scores = torch.topk(dist, 2, dim=0, largest=False).values[1, :]
        else:
            scores = torch.min(torch.index_select(dist, 0, picks[:i]), dim=0).values
        picks[i] = torch.argmax(scores)
    return picks.tolist()


def cdpruner_dense(x: torch.Tensor, relevance: torch.Tensor, keep: int) -> list[int]:
    """CDPruner's reference on one row: kernel diag(r) S diag(r) in full, then fast greedy MAP."""
    unit = x / x.norm(dim=-1, keepdim=True)
    sim = unit @ unit.T
    kernel = relevance[:, None] * sim * relevance[None, :]
    n = x.shape[0]
    cis = torch.zeros(keep, n)
    di2s = torch.diagonal(kernel).clone()
    picks = torch.empty(keep, dtype=torch.long)
    for i in range(keep):
        j = torch.argmax(di2s)
        picks[i] = j
        eis = (kernel[j] - torch.einsum("t,tn->n", cis[:i, j], cis[:i])) / torch.sqrt(di2s[j])
        cis[i] = eis
        di2s -= torch.square(eis)
        di2s[j] = -float("inf")
    return picks.tolist()


# -- inputs and runs ---------------------------------------------------------------------------
def make_tokens(n: int, batch: int, dim: int, seed: int = 0) -> VisualTokens:
    g = torch.Generator().manual_seed(seed)
    return VisualTokens(
        torch.randn(batch, n, dim, generator=g),
        image_embeds=torch.randn(batch, n, 768, generator=g),
        text_embeds=torch.randn(batch, 32, 768, generator=g),
    )


def runs(method: str, tokens: VisualTokens, keep: int) -> dict:
    """Name -> zero-argument callable returning sorted indices ``[B, keep]`` (or None for the limit)."""
    pruner = tokcompress.build_pruner(method)
    x = tokens.features

    def limit() -> None:
        for b in range(x.shape[0]):
            x[b] @ x[b].T

    if method == "divprune":
        def dense():
            return torch.tensor([sorted(divprune_dense(x[b], keep)) for b in range(x.shape[0])])
    else:
        relevance = pruner.scorer.score(tokens)

        def dense():
            return torch.tensor([sorted(cdpruner_dense(x[b], relevance[b], keep)) for b in range(x.shape[0])])
    return {"ours": lambda: pruner.select(tokens, keep=keep), "limit": limit, "dense": dense}


def cell(fns: dict, names: list[str], repeats: int, single: bool) -> dict:
    """Name -> report (seconds, mib, out, runs) for the implementations `names` of one cell.

    Memory and results come from the children; times from `repeats` interleaved runs here, the order
    reversed every other round so drift and load hit every implementation alike (paired ratios are
    taken per round). A `single` cell keeps its child's one run.
    """
    reports = {}
    for k in names:
        r = measure_in_child(fns[k], 1 if single else 2)
        reports[k] = {"seconds": r["seconds"][-1], "mib": r["mib"], "out": r["out"], "runs": 1}
    if single:
        return reports
    times: dict[str, list[float]] = {k: [] for k in names}
    for round_ in range(repeats):
        for k in names if round_ % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - start)
    for k in names:
        reports[k]["seconds"], reports[k]["runs"], reports[k]["times"] = statistics.median(times[k]), repeats, times[k]
    return reports


def ratio(a: dict, b: dict) -> float:
    """Median of the per-round ratios a / b (the ratio of the single runs for one-run cells)."""
    if "times" in a and "times" in b:
        return statistics.median(x / y for x, y in zip(a["times"], b["times"]))
    return a["seconds"] / b["seconds"]


# -- table -------------------------------------------------------------------------------------
def fmt_time(r: dict | None) -> str:
    if r is None:
        return "skipped"
    s = r["seconds"]
    text = f"{s * 1e3:.1f} ms" if s < 10 else f"{s:.1f} s"
    return text + ("*" if r["runs"] == 1 else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N in {576, 2880} only")
    ap.add_argument("--n", type=int, nargs="+", choices=sorted(KEEP), help=f"token counts (default {FULL_N})")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    ap.add_argument("--methods", nargs="+", default=["divprune", "cdpruner"], choices=["divprune", "cdpruner"])
    ap.add_argument("--dim", type=int, default=4096, help="feature width D (default 4096)")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs of a fast cell (default 7)")
    ap.add_argument("--time-limit", type=float, default=10.0,
                    help="seconds: a cell whose product is expected to take longer is run once per implementation (default 10)")
    ap.add_argument("--max-seconds", type=float, default=300.0,
                    help="skip the straightforward version at B > 1 when B times its B = 1 time exceeds this (default 300)")
    ap.add_argument("--dense-max-gib", type=float, default=4.0,
                    help="skip the straightforward version when its two N x N fp32 matrices exceed this (default 4)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = ap.parse_args(argv)
    ns = args.n or ([576, 2880] if args.quick else list(FULL_N))
    torch.set_num_threads(args.threads)
    print(f"D={args.dim}; {platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s); "
          f"torch {torch.__version__}. Times: median of interleaved runs (* = one run); memory: peak extra RSS.")
    print("| method | N | keep | B | ours | limit X @ X.T | ours / limit | peak extra MiB: ours / limit / dense "
          "| straightforward dense | dense / ours |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    dense_b1: dict[tuple[str, int], float] = {}  # (method, N) -> seconds of the straightforward version at B = 1
    for n in sorted(ns):
        keep = KEEP[n]
        for batch in sorted(args.batch):
            tokens = make_tokens(n, batch, args.dim)
            product = batch * n * n * args.dim / 40e9  # seconds at ~40 GMAC/s on one core
            single = product > args.time_limit
            repeats = args.repeats if product < 1 else 3
            limit = None
            for method in args.methods:
                fns = runs(method, tokens, keep)
                names = ["ours"] + (["limit"] if limit is None or not single else [])
                if 2 * n * n * 4 <= args.dense_max_gib * 2**30 and (
                    batch == 1 or dense_b1.get((method, n), 0.0) * batch <= args.max_seconds
                ):
                    names.append("dense")
                got = cell(fns, names, repeats, single)
                limit = got.get("limit", limit)
                ours, dense = got["ours"], got.get("dense")
                if dense is not None:
                    if dense["out"] != ours["out"]:
                        raise AssertionError(f"{method} N={n} B={batch}: the library and the dense version differ")
                    if batch == 1:
                        dense_b1[(method, n)] = dense["seconds"]
                mem = " / ".join(f"{r['mib']:.0f}" if r else "-" for r in (ours, limit, dense))
                speedup = f"{ratio(dense, ours):.1f}x" if dense else "-"
                print(f"| {method} | {n} | {keep} | {batch} | {fmt_time(ours)} | {fmt_time(limit)} | "
                      f"{ratio(ours, limit):.2f} | {mem} | {fmt_time(dense)} | {speedup} |", flush=True)
            del tokens
    return 0


if __name__ == "__main__":
    sys.exit(main())

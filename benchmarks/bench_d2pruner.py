"""Benchmark D2Pruner's selection against straightforward one-token-at-a-time implementations.

For N in {576, 2880, 16384} visual tokens (grids 24x24, 48x60, 128x128), D = 4096, batch 1 and 8,
prints the median time of the selection (hybrid graph build + greedy MIS; and the whole pruner,
scorer and debiaser included), the peak extra memory of one selection, and the ratio to two
references, after asserting all return identical indices. Inputs: features in 4x4-patch blobs
(cosine ~0.92 within a blob, ~0 across, far from the 0.8 threshold so float rounding cannot
flip an edge), uniform random attention.

Both references are written plainly, one row and one candidate per Python iteration:
- per-pick loop: for each pick, one similarity row (a matrix-vector product over unit vectors)
  and one spatial test, then its neighbours are marked unavailable; fill from the leftovers.
- dense pseudocode (the method reference's): the whole |R| x |R| adjacency of the non-pivots
  first, then the loop. Skipped above 1.2e12 multiply-adds (N=16384 at batch 8).

Peak extra memory: tracemalloc does not see torch's allocations, and torch keeps allocator
statistics for CUDA only, so on CPU the script measures the resident set of a child process: it
resets the peak (``/proc/self/clear_refs`` <- 5, Linux) and reports ``VmHWM`` after one selection
minus ``VmRSS`` before it. The child pins glibc to mmap every block over 128 KiB
(``MALLOC_MMAP_THRESHOLD_``), so freed tensors go back to the OS and cannot hide a later peak;
timings run in the parent without that setting, which would slow every allocation. On CUDA the
figure is ``torch.cuda.max_memory_allocated`` above the starting allocation.

Threads default to 1: the machine is shared, and two OpenMP threads on two busy cores spend
milliseconds in barriers (a 20-row matrix product went from 0.3 ms to 24 ms), which swamps both
implementations alike. Pass ``--threads 2`` on an idle machine.

    python benchmarks/bench_d2pruner.py            # full table
    python benchmarks/bench_d2pruner.py --quick    # N=576 and 2880, D=1024, fewer repeats
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import tokcompress
from tokcompress import Layout, VisualTokens
from tokcompress.selectors.base import rank_descending

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}

GRIDS = {576: (24, 24), 2880: (48, 60), 16384: (128, 128)}
KEEP = {576: 64, 2880: 288, 16384: 1638}


# -- inputs -------------------------------------------------------------------------------------
def make_tokens(batch: int, n: int, dim: int, dtype: torch.dtype, device: str, seed: int = 0) -> VisualTokens:
    """Content in 4x4-patch blobs (cosine ~0.92 inside a blob, ~0 across), random attention."""
    rows, cols = GRIDS[n]
    g = torch.Generator().manual_seed(seed)
    blob = (torch.arange(rows).view(-1, 1) // 4) * ((cols + 3) // 4) + torch.arange(cols).view(1, -1) // 4
    centres = torch.randn(batch, int(blob.max()) + 1, dim, generator=g)
    feats = centres[:, blob.flatten()] + 0.3 * torch.randn(batch, n, dim, generator=g)
    att = torch.rand(batch, n, generator=g)
    return VisualTokens(feats.to(device, dtype), attention=att.to(device), layout=Layout.grid(rows, cols))


# -- the straightforward references -------------------------------------------------------------
def _order(tokens: VisualTokens, scores: torch.Tensor, b: int, keep: int, sel_p) -> tuple[list, list, int]:
    valid = tokens.valid_mask()[b]
    order = rank_descending(scores[b : b + 1], valid.unsqueeze(0))[0][: int(valid.sum())].tolist()
    n_p = math.floor(sel_p.pivot_ratio * keep + 1e-9)
    return order[:n_p], order[n_p:], keep - n_p


def _edge_rule(cos: torch.Tensor, near: torch.Tensor, graph_p) -> torch.Tensor:
    if graph_p.rule == "or":
        return (cos > graph_p.threshold) | near
    w = graph_p.semantic_weight
    return w * cos + (1 - w) * near.float() > graph_p.threshold


def _fill(rest: list, picked: list, need: int) -> list:
    chosen = set(picked)
    return picked + [a for a in rest if a not in chosen][: need - len(picked)]


def reference_per_pick(tokens: VisualTokens, scores: torch.Tensor, keep: int, graph_p, sel_p) -> torch.Tensor:
    """Python loop over the candidates; each pick computes its own similarity row (one
    matrix-vector product over unit vectors) and spatial test, then marks its neighbours."""
    coords = tokens.coords()
    out = []
    for b in range(tokens.batch_size):
        pivots, rest, need = _order(tokens, scores, b, keep, sel_p)
        unit = F.normalize(tokens.features[b].float(), dim=-1)
        seg, row, col = coords[b, :, 0], coords[b, :, 1], coords[b, :, 2]
        avail = torch.zeros(tokens.num_tokens, dtype=torch.bool, device=tokens.device)
        avail[rest] = True
        picked = []
        for a in rest:
            if len(picked) == need:
                break
            if not bool(avail[a]):
                continue
            picked.append(a)
            avail[a] = False
            near = (seg == seg[a]) & (row >= 0) & (row[a] >= 0)
            near &= torch.maximum((row - row[a]).abs(), (col - col[a]).abs()) <= graph_p.radius
            avail &= ~_edge_rule(unit @ unit[a], near, graph_p)
        out.append(sorted(pivots + _fill(rest, picked, need)))
    return torch.tensor(out, device=tokens.device)


def reference_dense(tokens: VisualTokens, scores: torch.Tensor, keep: int, graph_p, sel_p) -> torch.Tensor:
    """The method reference's pseudocode: the full |R| x |R| adjacency of the non-pivots first
    (one matrix product), then a Python loop over R marking each pick's row."""
    coords = tokens.coords()
    out = []
    for b in range(tokens.batch_size):
        pivots, rest, need = _order(tokens, scores, b, keep, sel_p)
        r = torch.tensor(rest, device=tokens.device)
        unit = F.normalize(tokens.features[b, r].float(), dim=-1)
        seg, row, col = (coords[b, r, i] for i in range(3))
        near = (seg[:, None] == seg[None]) & (row[:, None] >= 0) & (row[None] >= 0)
        near &= torch.maximum((row[:, None] - row[None]).abs(), (col[:, None] - col[None]).abs()) <= graph_p.radius
        adj = _edge_rule(unit @ unit.T, near, graph_p)
        adj.fill_diagonal_(False)
        avail = torch.ones(len(rest), dtype=torch.bool, device=tokens.device)
        picked = []
        for a in range(len(rest)):
            if len(picked) == need:
                break
            if bool(avail[a]):
                picked.append(rest[a])
                avail[a] = False
                avail &= ~adj[a]
        out.append(sorted(pivots + _fill(rest, picked, need)))
    return torch.tensor(out, device=tokens.device)


DENSE_MAX_MACS = 1.2e12  # the dense reference is skipped above this many multiply-adds (minutes)


def dense_macs(n: int, batch: int, dim: int, keep: int) -> float:
    r = n - math.floor(0.7 * keep + 1e-9)
    return batch * r * r * dim


# -- measurement --------------------------------------------------------------------------------
def _status(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def peak_extra_bytes(fn, device: str) -> int | None:
    """Peak memory above the starting level during one call of `fn` (see the module docstring)."""
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - start
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    start = _status("VmRSS")
    fn()
    peak = _status("VmHWM")
    return None if start is None or peak is None else max(0, peak - start)


def median_seconds(fn, repeats: int, device: str) -> float:
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _prepare(pruner, n: int, batch: int, dim: int, dtype, device: str):
    keep = KEEP[n]
    tokens = make_tokens(batch, n, dim, dtype, device)
    scores = pruner.scorer.score(tokens)
    if pruner.debiaser is not None:
        scores = pruner.debiaser.debias(scores, tokens)
    gp, sp = pruner.graph.params, pruner.selector.params
    if pruner.graph.name != "hybrid" or gp.spatial_form != "binary" or gp.metric != "chebyshev" \
            or gp.semantic_norm != "none" or sp.fallback != "fill" or sp.suppress_pivot_neighbors:
        raise SystemExit("the references implement the hybrid graph (binary Chebyshev S_spat, no semantic_norm) with fill")
    runs = {
        "ours": lambda: pruner.selector.select(tokens, scores, pruner.graph.build(tokens), keep),
        "whole": lambda: pruner.select(tokens, keep=keep),
        "per_pick": lambda: reference_per_pick(tokens, scores, keep, gp, sp),
    }
    if dense_macs(n, batch, dim, keep) <= DENSE_MAX_MACS:
        runs["dense"] = lambda: reference_dense(tokens, scores, keep, gp, sp)
    return runs


def run_case(pruner, n: int, batch: int, dim: int, dtype, device: str, repeats: int, ref_repeats: int) -> dict:
    runs = _prepare(pruner, n, batch, dim, dtype, device)
    got = torch.sort(runs["ours"](), dim=1).values  # warm-up and the equality checks
    assert torch.equal(runs["whole"](), got), "the pruner pipeline and its stages disagree"
    result = {"n": n, "keep": KEEP[n], "batch": batch}
    for name, fn in runs.items():
        if name in ("per_pick", "dense") and not torch.equal(fn(), got):
            raise AssertionError(f"N={n} B={batch}: the vectorised selection and reference {name!r} differ")
        result[name] = median_seconds(fn, repeats if name in ("ours", "whole") else ref_repeats, device) * 1e3
    return result


def measure_memory(args, n: int, batch: int) -> dict:
    """Peak extra bytes of one run of each implementation (a child process on CPU)."""
    if args.device == "cuda":
        runs = _prepare(tokcompress.build_pruner(args.preset), n, batch, args.dim, getattr(torch, args.dtype), "cuda")
        runs["ours"]()
        return {k: peak_extra_bytes(fn, "cuda") for k, fn in runs.items() if k != "whole"}
    cmd = [sys.executable, __file__, "--memory-case", str(n), str(batch), "--preset", args.preset,
           "--dtype", args.dtype, "--threads", str(args.threads)] + (["--quick"] if args.quick else [])
    out = subprocess.run(cmd, env={**os.environ, **MALLOC_ENV}, capture_output=True, text=True, check=True)
    return {k: (None if v == "None" else int(v)) for k, v in (item.split("=") for item in out.stdout.split())}


def _mib(x: int | None) -> str:
    return "n/a" if x is None else f"{x / 2**20:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N in {576, 2880}, D=1024, 3 repeats")
    parser.add_argument("--preset", default="d2pruner", help="a D2Pruner preset (default: d2pruner)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="*", choices=sorted(GRIDS), help="override the token counts")
    parser.add_argument("--batches", type=int, nargs="*", help="override the batch sizes (default 1 8)")
    parser.add_argument("--repeats", type=int, help="timed repeats of the vectorised selection")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, see the docstring)")
    parser.add_argument("--memory-case", type=int, nargs=2, metavar=("N", "B"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.dim = dim = 1024 if args.quick else 4096
    if args.memory_case:  # child process: print the two peaks
        n, batch = args.memory_case
        runs = _prepare(tokcompress.build_pruner(args.preset), n, batch, dim, getattr(torch, args.dtype), "cpu")
        runs["ours"]()
        print(" ".join(f"{k}={peak_extra_bytes(fn, 'cpu')}" for k, fn in runs.items() if k != "whole"))
        return 0

    sizes = args.sizes or ([576, 2880] if args.quick else [576, 2880, 16384])
    batches = args.batches or [1, 8]
    dtype = getattr(torch, args.dtype)
    pruner = tokcompress.build_pruner(args.preset)
    print(
        f"# {args.preset} on {args.device} ({torch.get_num_threads()} CPU threads), D={dim}, {args.dtype}, "
        f"torch {torch.__version__}"
    )
    print(
        "| N | keep | B | selection (ms) | whole pruner (ms) | per-pick loop (ms) | speed-up | "
        "dense pseudocode (ms) | speed-up | peak extra MiB: ours / per-pick / dense |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        for batch in batches:
            repeats = args.repeats or (3 if args.quick else (21 if n <= 2880 else 3))
            ref_repeats = 1 if n >= 16384 else 3
            r = run_case(pruner, n, batch, dim, dtype, args.device, repeats, ref_repeats)
            mem = measure_memory(args, n, batch)
            dense = f"{r['dense']:.1f} | {r['dense'] / r['ours']:.1f}x" if "dense" in r else "skipped (> 1.2e12 MACs) | -"
            print(
                f"| {n} | {r['keep']} | {batch} | {r['ours']:.2f} | {r['whole']:.2f} | {r['per_pick']:.1f} | "
                f"{r['per_pick'] / r['ours']:.1f}x | {dense} | "
                f"{_mib(mem.get('ours'))} / {_mib(mem.get('per_pick'))} / {_mib(mem.get('dense'))} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

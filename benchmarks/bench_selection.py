"""Selection cost of every registered preset: median time and peak extra memory per (N, batch) cell.

    python benchmarks/bench_selection.py                 # N in {576, 2880, 16384}, batch 1 and 8, D = 4096
    python benchmarks/bench_selection.py --quick         # N in {576, 2880}, batch 1, 3 runs
    python benchmarks/bench_selection.py --max-seconds 60 --skip divprune@16384x8 --presets fastv dart

Every preset the catalog knows is timed (D2Pruner's appear as soon as its plugin registers them), on
one synthetic batch per cell carrying every probe a stage may read. Grids and kept counts are those of
benchmarks/bench_d2pruner.py (24x24 -> 64, 48x60 -> 288, 128x128 -> 1638), so the two tables line up.
The timed call is ``pruner.select(tokens, keep=...)``: scores, graph and selection; no merge, no model.

Cells: the median of ``--repeats`` runs after a warm-up. A cell whose first run is slower than
``--time-limit`` is reported from that run alone. The slowest cells are skipped: one whose time,
extrapolated quadratically in N from the same preset's previous N at the same batch, exceeds
``--max-seconds``; ``--skip PRESET@N`` or ``PRESET@NxB`` skips cells by hand.

Peak extra memory: on CPU the first runs happen in a forked child (benchmarks/child_memory.py:
glibc returns freed blocks to the OS, the peak resident set is reset before each call) that reports
its second call (the first pays the child's one-time start-up); timings run in the parent with the
normal allocator. On CUDA it is
``torch.cuda.max_memory_allocated`` above the inputs. Threads default to 1, as in the D2Pruner
benchmark: on a shared machine two OpenMP threads spend milliseconds in barriers.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import tokcompress
from tokcompress import Layout, VisualTokens
from tokcompress.catalog import get_catalog

sys.path.insert(0, str(Path(__file__).parent))
from child_memory import available as memory_available, measure_in_child  # noqa: E402  (shared with bench_limits)

FULL_N = (576, 2880, 16384)
FULL_B = (1, 8)
GRIDS = {576: (24, 24), 2880: (48, 60), 16384: (128, 128)}  # as benchmarks/bench_d2pruner.py
KEEP = {576: 64, 2880: 288, 16384: 1638}


@dataclass
class Cell:
    preset: str
    n: int
    batch: int
    keep: int
    median_ms: float | None = None
    runs: int = 0
    peak_extra_mib: float | None = None
    note: str = ""
    error: str = ""


def layout_for(n: int) -> Layout:
    """The D2Pruner benchmark's grids; any other N must be a square."""
    return Layout.grid(*GRIDS[n]) if n in GRIDS else Layout.square(n)


def make_tokens(n: int, batch: int, dim: int, key_dim: int, embed_dim: int, text: int, device: str, seed: int = 0) -> VisualTokens:
    g = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device)

    return VisualTokens(
        randn(batch, n, dim),
        attention=torch.rand(batch, n, generator=g).softmax(-1).to(device),
        keys=randn(batch, n, key_dim),
        image_embeds=randn(batch, n, embed_dim),
        text_keys=randn(batch, text, key_dim),
        text_embeds=randn(batch, text, embed_dim),
        text_features=randn(batch, text, dim),
        layout=layout_for(n),
    )


def timed(pruner: tokcompress.Pruner, tokens: VisualTokens, keep: int, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    pruner.select(tokens, keep=keep)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def first_run(pruner: tokcompress.Pruner, tokens: VisualTokens, keep: int, device: str, limit: float) -> tuple[float, float | None]:
    """(seconds of a first selection, peak extra MiB of one selection); on CPU in a forked child.

    The child runs the selection twice and reports the second call's memory, since a fresh process
    pays a one-time ~10-16 MiB on its first torch call; a first call slower than `limit` is not
    repeated and its own memory is reported.
    """
    if device.startswith("cuda"):
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        seconds = timed(pruner, tokens, keep, device)
        return seconds, (torch.cuda.max_memory_allocated() - base) / 2**20
    if not memory_available():
        return timed(pruner, tokens, keep, device), None
    report = measure_in_child(lambda: pruner.select(tokens, keep=keep), calls=2, limit=limit)  # CPU: no sync to time
    return report["seconds"][0], report["mib"]


def run_cell(cell: Cell, pruner: tokcompress.Pruner, tokens: VisualTokens, args: argparse.Namespace) -> None:
    """Fills `cell` with the median time and the first run's peak extra memory."""
    try:
        first, cell.peak_extra_mib = first_run(pruner, tokens, cell.keep, args.device, args.time_limit)
    except Exception as exc:  # a preset that cannot run on these inputs is reported, not fatal
        cell.note, cell.error = "error", str(exc).splitlines()[0]
        return
    if first > args.time_limit:
        cell.median_ms, cell.runs = first * 1e3, 1
        return
    timed(pruner, tokens, cell.keep, args.device)  # warm-up in this process
    times = [timed(pruner, tokens, cell.keep, args.device) for _ in range(args.repeats)]
    cell.median_ms, cell.runs = statistics.median(times) * 1e3, len(times)


def skipped(preset: str, n: int, batch: int, rules: list[str]) -> bool:
    return f"{preset}@{n}" in rules or f"{preset}@{n}x{batch}" in rules


def format_cell(c: Cell) -> str:
    if c.median_ms is None:
        return c.note or "-"
    mem = "n/a" if c.peak_extra_mib is None else f"{max(c.peak_extra_mib, 0):.0f} MiB"
    time_ = f"{c.median_ms:.1f} ms" if c.median_ms < 1e4 else f"{c.median_ms / 1e3:.0f} s"
    return f"{time_} / {mem}" + ("*" if c.runs == 1 else "")


def table(cells: list[Cell], grid: list[tuple[int, int]]) -> str:
    presets = sorted({c.preset for c in cells})
    by_key = {(c.preset, c.n, c.batch): c for c in cells}
    head = "| preset | " + " | ".join(f"N={n} B={b} (keep {by_key[(presets[0], n, b)].keep})" for n, b in grid) + " |"
    lines = [head, "|" + "---|" * (len(grid) + 1)]
    for p in presets:
        lines.append(f"| {p} | " + " | ".join(format_cell(by_key[(p, n, b)]) for n, b in grid) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N in {576, 2880}, batch 1, 3 runs")
    ap.add_argument("--n", type=int, nargs="+", help=f"token counts (default {FULL_N})")
    ap.add_argument("--batch", type=int, nargs="+", help=f"batch sizes (default {FULL_B})")
    ap.add_argument("--dim", type=int, default=4096, help="feature width D (default 4096)")
    ap.add_argument("--key-dim", type=int, default=1024, help="key width (default 1024)")
    ap.add_argument("--embed-dim", type=int, default=768, help="joint image-text width, CLIP-L (default 768)")
    ap.add_argument("--text", type=int, default=32, help="text tokens (default 32)")
    ap.add_argument("--keep-ratio", type=float, help="keep round(N * ratio) (default: 64, 288, 1638 as the D2Pruner benchmark)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs after the warm-up (default 5)")
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds: a slower first run is reported alone (default 10)")
    ap.add_argument("--max-seconds", type=float, default=120.0,
                    help="skip a cell whose time extrapolated as N^2 from the preset's previous N exceeds this (default 120)")
    ap.add_argument("--skip", nargs="*", default=[], metavar="PRESET@N[xB]", help="cells to skip")
    ap.add_argument("--presets", nargs="*", help="only these presets (default: every registered one)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, see above)")
    ap.add_argument("--json", type=Path, help="also write the raw cells here")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.batch, args.repeats = args.n or [576, 2880], args.batch or [1], min(args.repeats, 3)
    ns, batches = args.n or list(FULL_N), args.batch or list(FULL_B)
    torch.set_num_threads(args.threads)
    presets = args.presets or sorted(get_catalog().presets)
    pruners = {p: tokcompress.build_pruner(p) for p in presets}
    grid = [(n, b) for n in sorted(ns) for b in sorted(batches)]
    cells: list[Cell] = []
    last: dict[tuple[str, int], Cell] = {}  # (preset, batch) -> its last measured cell
    for n, b in grid:
        tokens = make_tokens(n, b, args.dim, args.key_dim, args.embed_dim, args.text, args.device)
        keep = max(1, round(n * args.keep_ratio)) if args.keep_ratio else KEEP.get(n, max(1, round(n * 64 / 576)))
        for p in presets:
            cell = Cell(p, n, b, keep)
            cells.append(cell)
            prev = last.get((p, b))
            estimate = prev.median_ms / 1e3 * (n / prev.n) ** 2 if prev is not None else 0.0
            if skipped(p, n, b, args.skip):
                cell.note = "skipped"
            elif estimate > args.max_seconds:
                cell.note = f"skipped (est. {estimate:.0f} s)"
            else:
                run_cell(cell, pruners[p], tokens, args)
                if cell.median_ms is not None:
                    last[(p, b)] = cell
            print(f"  {p:>28} N={n:>5} B={b}: {format_cell(cell)} {cell.error}", file=sys.stderr, flush=True)
        del tokens
    cpu = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s)"
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu
    print(f"Selection time (median of {args.repeats} after a warm-up) / peak extra memory; D={args.dim}; "
          f"device: {device}; torch {torch.__version__}. * = a single run.")
    print(table(cells, grid))
    if args.json:
        args.json.write_text(json.dumps([asdict(c) for c in cells], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

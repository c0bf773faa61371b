"""Fixed cost of a pruner call: what `Pruner.select` and building `VisualTokens` add to the stages' own work.

    python benchmarks/bench_fixed_cost.py                       # d2pruner, N = 576, D = 4096, keep 64
    python benchmarks/bench_fixed_cost.py --preset fastv --n 2880 --keep 288 --rounds 301

Four configurations run paired and interleaved (tokcompress.timing.time_paired), one thread:
- ``stages``: the preset's scorer, debiaser, graph and selector called directly on prepared tokens
  (the work of the method itself);
- ``select``: ``pruner.select`` on the same tokens (adds budget resolution, input and output checks,
  the sort of the picks);
- ``tokens+select``: building ``VisualTokens`` from the tensors an attached pruner receives
  (features and attention, plus keys/embeddings where the preset reads them), then ``select``.
  Construction proves every value finite with one sum per field (one read of the features);
- ``attach-style``: the same with ``check_values=False``, as the Hugging Face placements build it
  from hidden states the model just produced (shapes and layouts still checked).

Reported: the median of each, the per-round ratios to ``stages`` (median and quartiles; the fixed cost
is the ratio minus one) and the median of the per-round differences in microseconds. Then the same
calls warm: every stage answers at once with its precomputed output, so what is timed is the fixed cost
alone with its code and data in the caches (right after a real selection they are not).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from tokcompress import VisualTokens
from tokcompress.pruner import build_pruner
from tokcompress.timing import time_paired

sys.path.insert(0, str(Path(__file__).parent))
from bench_selection import make_tokens  # noqa: E402  (the selection benchmark's inputs and grids)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="d2pruner")
    ap.add_argument("--n", type=int, default=576)
    ap.add_argument("--keep", type=int, default=64)
    ap.add_argument("--dim", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=201)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    pruner = build_pruner(args.preset)
    full = make_tokens(args.n, 1, args.dim, 128, args.dim, 32, "cpu")
    fields = {name: getattr(full, name) for name in sorted(pruner.requires)}
    tokens = VisualTokens(full.features, layout=full.layout, **fields)

    def stages() -> None:
        scores = pruner.scorer.score(tokens) if pruner.scorer else None
        if pruner.debiaser:
            scores = pruner.debiaser.debias(scores, tokens)
        graph = pruner.graph.build(tokens) if pruner.graph else None
        pruner.selector.select(tokens, scores, graph, args.keep)

    def built(check_values: bool) -> None:
        tokens = VisualTokens(full.features, layout=full.layout, **fields, check_values=check_values)
        pruner.select(tokens, keep=args.keep)

    runs = {
        "stages": stages,
        "select": lambda: pruner.select(tokens, keep=args.keep),
        "tokens+select": lambda: built(True),
        "attach-style": lambda: built(False),
    }
    result = time_paired(runs, "stages", rounds=args.rounds, warmup=10)
    print(f"{args.preset}, N = {args.n}, D = {args.dim}, keep {args.keep}, fields {['features', *fields]}, "
          f"{result.threads} thread(s), {args.rounds} paired rounds")
    for name in runs:
        line = f"  {name:14s} {result.median_ms(name) * 1e3:8.0f} us"
        if name != "stages":
            q1, mid, q3 = result.quartiles(name, lambda stages, call: call / stages)  # per round
            added = result.quartiles(name, lambda stages, call: call - stages)[1] * 1e3
            line += (f"   fixed cost {mid - 1:+.1%} of the stages (quartiles {q1 - 1:+.1%} .. {q3 - 1:+.1%}),"
                     f" {added:+.0f} us")
        print(line)

    # The same calls with every stage answering at once with its output computed here: the fixed cost
    # alone, its code and data in the caches from the call before (after a real selection they are
    # not: that is the figure above).
    raw = pruner.scorer.score(tokens) if pruner.scorer else None
    scores = pruner.debiaser.debias(raw, tokens) if pruner.debiaser else raw
    graph = pruner.graph.build(tokens) if pruner.graph else None
    picks = pruner.selector.select(tokens, scores, graph, args.keep)
    for stage, method, value in ((pruner.scorer, "score", raw), (pruner.debiaser, "debias", scores),
                                 (pruner.graph, "build", graph), (pruner.selector, "select", picks)):
        if stage is not None:
            setattr(stage, method, lambda *_, value=value: value)
    reps = 2000
    looped = {name: (lambda fn=fn: [fn() for _ in range(reps)]) for name, fn in runs.items()}
    warm = time_paired(looped, "stages", rounds=15, warmup=2)
    print(f"  warm, the stages answering at once (median of 15 rounds of {reps} calls):")
    for name in runs:
        if name != "stages":
            added = warm.quartiles(name, lambda stages, call: call - stages)[1] / reps * 1e3
            print(f"  {name:14s} {added:+8.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

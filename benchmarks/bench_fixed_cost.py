"""Fixed cost of a pruner call: what `Pruner.select` and building `VisualTokens` add to the stages' own work.

    python benchmarks/bench_fixed_cost.py                       # d2pruner, N = 576, D = 4096, keep 64
    python benchmarks/bench_fixed_cost.py --preset fastv --n 2880 --keep 288 --rounds 301

Four configurations run paired and interleaved (tokcompress.timing.time_paired: each runs right after
every other one equally often, so none inherits another's cache state more than the rest), one thread:
- ``stages``: the preset's scorer, debiaser, graph and selector called directly on prepared tokens
  (the work of the method itself);
- ``select``: ``pruner.select`` on the same tokens (adds budget resolution, input and output checks,
  the sort of the picks);
- ``tokens+select``: building ``VisualTokens`` from the tensors an attached pruner receives
  (features and attention, plus keys/embeddings where the preset reads them), then ``select``.
  Construction proves every value finite with one sum per field (one read of the features);
- ``attach-style``: the same with ``check_values=False``, as the Hugging Face placements build it
  from hidden states the model just produced (shapes and layouts still checked).

Reported, per configuration:
- the fixed cost measured inside each call: the call's time outside the stages' own methods (each is
  wrapped by a clock, in every configuration alike) minus the same for ``stages`` in the same round (the
  benchmark calling the four methods directly), in microseconds and as a share of the stages' time in
  the same call (median and quartiles over rounds);
- the paired difference of whole calls to ``stages`` (median and quartiles of the per-round ratios,
  median of the per-round differences): it also holds any slowdown of the stages themselves, but the
  stages' own spread (several percent of a millisecond) is in it too;
- how much slower the stages ran inside the call than in ``stages`` (median over rounds).
Then the same calls warm: every stage answers at once with its precomputed output, so what is timed is
the fixed cost alone with its code and data in the caches (right after a real selection they are not).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from tokcompress import VisualTokens
from tokcompress.pruner import build_pruner
from tokcompress.timing import time_paired

sys.path.insert(0, str(Path(__file__).parent))
from bench_selection import make_tokens  # noqa: E402  (the selection benchmark's inputs and grids)


class StageClock:
    """Milliseconds spent inside the pruner's stage methods, by wrapping each one."""

    METHODS = (("scorer", "score"), ("debiaser", "debias"), ("graph", "build"), ("selector", "select"))

    def __init__(self, pruner) -> None:
        self.ms = 0.0
        self.stages = [(stage, method) for kind, method in self.METHODS if (stage := getattr(pruner, kind))]
        for stage, method in self.stages:
            setattr(stage, method, self._timed(getattr(stage, method)))

    def _timed(self, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.ms += (time.perf_counter() - start) * 1e3
        return timed

    def recording(self, fn, into: list[float]):
        """`fn`, appending to `into` the time its calls spent inside the stages."""
        def run() -> None:
            self.ms = 0.0
            fn()
            into.append(self.ms)
        return run

    def remove(self) -> None:
        for stage, method in self.stages:
            delattr(stage, method)


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

    def stages() -> tuple:
        """Each stage's output: raw scores, debiased scores, graph, picks."""
        raw = pruner.scorer.score(tokens) if pruner.scorer else None
        scores = pruner.debiaser.debias(raw, tokens) if pruner.debiaser else raw
        graph = pruner.graph.build(tokens) if pruner.graph else None
        return raw, scores, graph, pruner.selector.select(tokens, scores, graph, args.keep)

    def built(check_values: bool) -> None:
        tokens = VisualTokens(full.features, layout=full.layout, **fields, check_values=check_values)
        pruner.select(tokens, keep=args.keep)

    clock = StageClock(pruner)
    runs = {
        "stages": stages,
        "select": lambda: pruner.select(tokens, keep=args.keep),
        "tokens+select": lambda: built(True),
        "attach-style": lambda: built(False),
    }
    warmup = 10
    inside: dict[str, list[float]] = {name: [] for name in runs}
    result = time_paired({name: clock.recording(fn, inside[name]) for name, fn in runs.items()}, "stages",
                         rounds=args.rounds, warmup=warmup)
    inside = {name: ms[warmup:] for name, ms in inside.items()}
    print(f"{args.preset}, N = {args.n}, D = {args.dim}, keep {args.keep}, fields {['features', *fields]}, "
          f"{result.threads} thread(s), {args.rounds} paired rounds")
    outside = {name: [call - own for call, own in zip(result.ms[name], inside[name])] for name in runs}
    print(f"  stages         call {result.median_ms('stages') * 1e3:6.0f} us, of which "
          f"{statistics.median(outside['stages']) * 1e3:.1f} us outside the four methods (calling them)")
    print("  fixed cost inside each call: its time outside the stages' methods minus that of stages in the round")
    for name in runs:
        if name != "stages":
            added = [o - ref for o, ref in zip(outside[name], outside["stages"])]
            q1, mid, q3 = statistics.quantiles([a / own for a, own in zip(added, inside[name])], n=4)
            print(f"  {name:14s} call {result.median_ms(name) * 1e3:6.0f} us   fixed cost "
                  f"{statistics.median(added) * 1e3:+6.1f} us = {mid:+.1%} of the stages (quartiles {q1:+.1%} .. {q3:+.1%})")
    print("  paired difference of whole calls to stages:")
    alone = inside["stages"]
    for name in runs:
        if name != "stages":
            q1, mid, q3 = result.quartiles(name, lambda stages, call: call / stages)  # per round
            added = result.quartiles(name, lambda stages, call: call - stages)[1] * 1e3
            slower = statistics.median(own - ref for own, ref in zip(inside[name], alone)) * 1e3
            print(f"  {name:14s} {mid - 1:+.1%} (quartiles {q1 - 1:+.1%} .. {q3 - 1:+.1%}), {added:+.0f} us; "
                  f"the stages themselves {slower:+.1f} us")

    # The same calls with every stage answering at once with its output computed here: the fixed cost
    # alone, its code and data in the caches from the call before (after a real selection they are
    # not: that is the figure above).
    clock.remove()
    raw, scores, graph, picks = stages()
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

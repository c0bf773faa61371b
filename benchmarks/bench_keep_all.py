"""Per-call overhead of an attached pruner that prunes nothing, on the shipped (overhead-bound) grounding model.

    python benchmarks/bench_keep_all.py                 # 201 paired rounds, 1 thread
    python benchmarks/bench_keep_all.py --rounds 401 --threads 2

On a 15 ms prefill the fixed costs of hooks, the attention probe and the gathers are visible, where a
compute-bound decoder (benchmarks/bench_prefill.py) hides them in its noise. Configurations, run paired
and interleaved (tokcompress.timing.time_paired), one prefill each (``model(**inputs)``):

- ``none``: nothing attached;
- ``keep-all``: FastV attached with a budget that keeps every visual token: the shortcut (no probe, no
  gathering; ``handle.stats.skipped``);
- ``keep-all (machinery)``: the same budget with the selection frozen to every visual token, which runs
  the whole pruning path (probe, selection replay, gathers, masks) as every keep-all call did before
  the shortcut: the "before" figure.
- ``fastv 28``: FastV keeping 28 of 256 tokens, for scale.

Reported: median ms per prefill and the per-round difference to ``none`` (median and quartiles).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import warnings

import torch

import tokcompress
from tokcompress.timing import time_paired


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=201)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)

    from tokcompress_grounding import format_prompt, load_default_model
    from tokcompress_grounding.data import make_sample

    model, processor = load_default_model()
    sample = make_sample(0, "test", 0)
    inputs = dict(processor(images=[sample.image], text=[format_prompt(sample.prompt)], return_tensors="pt"))
    visual = (inputs["input_ids"][0] == model.config.image_token_id).nonzero().flatten()
    n = len(visual)
    fastv = tokcompress.build_pruner("fastv")

    @contextlib.contextmanager
    def attached(keep: int, freeze: bool = False):
        with tokcompress.attach(model, fastv, keep=keep) as handle:
            if freeze:
                handle.freeze([visual])
            yield

    def prefill() -> None:
        model(**inputs)

    runs = {"none": prefill, "keep-all": prefill, "keep-all (machinery)": prefill, "fastv 28": prefill}
    around = {"keep-all": lambda: attached(n), "keep-all (machinery)": lambda: attached(n, freeze=True),
              "fastv 28": lambda: attached(28)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # keep-all warns that nothing is pruned: that is the point here
        result = time_paired(runs, "none", rounds=args.rounds, warmup=5, around=around)
    print(f"grounding model ({n} visual tokens), {result.threads} thread(s), {args.rounds} paired rounds")
    for name in runs:
        line = f"  {name:22s} {result.median_ms(name):7.2f} ms"
        if name != "none":
            q1, mid, q3 = result.quartiles(name, lambda none, call: call - none)  # per round
            line += f"   {mid:+.2f} ms per prefill vs none (quartiles {q1:+.2f} .. {q3:+.2f})"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Cost of attention-mass compensation (``merger: assign``): FLOPs and measured prefill time, CPU, fp32.

    python benchmarks/bench_compensation.py                 # 7 paired rounds, one thread
    python benchmarks/bench_compensation.py --threads 2 --rounds 9 --json out.json

Two models: the LLaVA-shaped decoder of `bench_prefill` (hidden 1024, 8 layers, 576 visual + 64 text
tokens, keep 64) and the shipped grounding model (4 layers of 128, 256 visual tokens, keep 28). For
FastV (layer K=2) and DivPrune (pre-LLM), each plain and with the ``assign`` merger (cosine of the
features, log-size bias; then also the value mean), every configuration timed in the same paired,
balanced rounds (`tokcompress.timing.time_paired`); the cost of the option is the median per-round
ratio of the compensated prefill to the plain one of the same method.

FLOPs of the option against the pruned decoder prefill (`tokcompress.flops`, SwiGLU count): the
assignment's cosine is one [N, D] x [D, M] product (2NMD), the value mean one [M, N] x [N, D]
product (2NMD, a dense one-hot), the bias one addition per key of each distinct layer mask (q * kv,
a few per layer type, negligible) plus the attention's use of an additive mask instead of a boolean
one or SDPA's causal fast path (same FLOPs; the kernel may differ, which the timing shows).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import warnings
from pathlib import Path

import torch

import tokcompress
from tokcompress.timing import time_paired

sys.path.insert(0, str(Path(__file__).parent))
import bench_prefill  # noqa: E402  (the LLaVA-shaped model and prompt)

MERGERS = {"": None, "+bias": {"name": "assign"}, "+bias+mean": {"name": "assign", "values": "mean"}}


def specs(method: str) -> dict[str, object]:
    return {method + k: method if m is None else {"extends": method, "merger": m} for k, m in MERGERS.items()}


def option_flops(n: int, m: int, d: int, values: bool) -> float:
    """Multiply-adds x 2 of the assignment (and value mean) for one row: N tokens, M kept, width D."""
    return 2.0 * n * m * d * (2 if values else 1)


def measure(model, inputs, keep: int, methods: list[str], rounds: int, text_tokens: int, n_visual: int) -> list[dict]:
    configs: dict[str, object] = {}
    for method in methods:
        configs.update(specs(method))
    pruners = {name: tokcompress.build_pruner(spec) for name, spec in configs.items()}
    handles: dict[str, object] = {}

    @contextlib.contextmanager
    def attached(name: str):
        with tokcompress.attach(model, pruners[name], keep=keep) as handle:
            handles[name] = handle
            yield

    def forward():
        model(**inputs, use_cache=True, logits_to_keep=1)

    runs = {"none": forward, **{name: forward for name in configs}}
    around = {name: (lambda n=name: attached(n)) for name in configs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        timing = time_paired(runs, "none", rounds=rounds, warmup=1, around=around)
    cfg = model.config.text_config
    rows = []
    for name in configs:
        method = next(m for m in methods if name == m or name.startswith(m + "+"))
        stats = handles[name].stats
        plain = timing.ms[method]
        ratios = [c / p for c, p in zip(timing.ms[name], plain)]
        decoder = tokcompress.flops(model.config, text_tokens, n_visual, keep, stats.layer, mlp="swiglu").pruned
        extra = 0.0 if name == method else option_flops(n_visual, keep, cfg.hidden_size, name.endswith("+mean"))
        rows.append({"config": name, "placement": stats.placement, "layer": stats.layer,
                     "prefill_ms": timing.median_ms(name), "select_ms": stats.select_seconds * 1e3,
                     "vs_plain": statistics.median(ratios), "vs_plain_low": min(ratios), "vs_plain_high": max(ratios),
                     "option_flops": extra, "decoder_flops": decoder, "option_share": extra / decoder,
                     "speedup_vs_unpruned": timing.speedup(name).median})
    return rows


def print_rows(title: str, rows: list[dict]) -> None:
    print(title)
    print(f"{'config':22s} {'where':10s} {'prefill ms':>10s} {'select ms':>9s} {'time / plain':>22s} "
          f"{'option GFLOP':>12s} {'of decoder':>10s} {'vs unpruned':>11s}")
    for r in rows:
        where = f"layer K={r['layer']}" if r["placement"] == "layer" else r["placement"]
        print(f"{r['config']:22s} {where:10s} {r['prefill_ms']:10.1f} {r['select_ms']:9.2f} "
              f"{r['vs_plain']:8.3f} [{r['vs_plain_low']:.3f}-{r['vs_plain_high']:.3f}] "
              f"{r['option_flops'] / 1e9:12.4f} {r['option_share']:10.2%} {r['speedup_vs_unpruned']:10.2f}x")


def analytic_llava_7b() -> list[dict]:
    """The option's FLOPs against LLaVA-1.5-7B's pruned decoder prefill (576 visual + 64 text tokens), no timing."""
    config = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32}
    rows = []
    for keep in (192, 128, 64):
        for layer, where in ((2, "layer K=2"), (0, "pre_llm")):
            decoder = tokcompress.flops(config, 64, 576, keep, layer, mlp="swiglu").pruned
            for values in (False, True):
                extra = option_flops(576, keep, 4096, values)
                rows.append({"keep": keep, "where": where, "values": "mean" if values else "keep",
                             "option_gflop": extra / 1e9, "share": extra / decoder})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path)
    p.add_argument("--skip-llava", action="store_true", help="only the grounding model")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    out = {"threads": args.threads, "rounds": args.rounds, "torch": torch.__version__}
    if not args.skip_llava:
        model = bench_prefill.build_model()
        inputs = bench_prefill.build_inputs(model)
        text = bench_prefill.N_TEXT_BEFORE + bench_prefill.N_TEXT_AFTER
        rows = measure(model, inputs, bench_prefill.KEEP, ["fastv", "divprune"], args.rounds, text, bench_prefill.N_IMAGE)
        print_rows(f"LLaVA-shaped decoder (1024 wide, 8 layers), {text} text + {bench_prefill.N_IMAGE} image tokens, "
                   f"keep {bench_prefill.KEEP}, {args.threads} thread(s), medians of {args.rounds} paired rounds", rows)
        out["llava_shaped"] = rows
        del model
    from tokcompress_grounding import format_prompt, load_default_model
    from tokcompress_grounding.data import make_sample

    model, processor = load_default_model()
    sample = make_sample(0, "val", 1)  # a counting question
    inputs = processor(images=[sample.image], text=[format_prompt(sample.prompt)], return_tensors="pt")
    n_visual = int((inputs["input_ids"] == model.config.image_token_id).sum())
    text = inputs["input_ids"].shape[1] - n_visual
    rows = measure(model, dict(inputs), 28, ["fastv", "d2pruner", "divprune"], args.rounds, text, n_visual)
    print_rows(f"grounding model (128 wide, 4 layers), {text} text + {n_visual} image tokens, keep 28", rows)
    out["grounding"] = rows
    out["llava_1_5_7b_analytic"] = analytic_llava_7b()
    print("LLaVA-1.5-7B shape (analytic): the option's FLOPs as a share of the pruned decoder prefill")
    for r in out["llava_1_5_7b_analytic"]:
        print(f"  keep {r['keep']:3d} {r['where']:10s} values {r['values']:4s}: {r['option_gflop']:.3f} GFLOP = {r['share']:.3%}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

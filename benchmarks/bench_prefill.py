"""Prefill speed-up of pruning inside a VLM on CPU, fp32, against the speed-up its FLOPs predict.

    python benchmarks/bench_prefill.py                  # 7 paired rounds, torch's default threads
    python benchmarks/bench_prefill.py --threads 1 --rounds 9 --json out.json

Model: LLaVA architecture built in code with a Llama-like decoder (hidden 1024, 8 layers, 16 heads,
SwiGLU MLP 2816) and a one-layer CLIP tower at 336 px / 14 (576 visual tokens); prompt 8 text + 576
image + 56 text tokens; keep 64. Prefill = one forward as ``generate``'s first step
(``use_cache=True``, ``logits_to_keep=1``). Two times per run: the *decoder* (from entering the
language model to leaving it: the pre-LLM selection and gathers, the layer-K probe and selection,
all decoder layers) and the *whole* prefill (plus vision tower, projector, embedding, LM head).
Configurations run through `tokcompress.timing.time_paired`: a warm-up round, then rounds in which
every configuration runs once, in orders balanced over the rounds; a speed-up is the median over rounds of the ratio
within each round (baseline and configuration timed seconds apart, under the same load). A *bare
decoder* fed the kept sequence directly (no tokcompress) separates the hardware's efficiency at the
smaller size from our overhead (its runs are part of the same paired rounds, so "our overhead" is a
per-round ratio too); two keep-all rows measure the fixed cost of an attached pruner that
prunes nothing (the shortcut, and the whole machinery with every token kept). Predicted speed-up = unpruned / pruned decoder FLOPs (`tokcompress.flops`, SwiGLU
count ``4nd^2 + 2n^2d + 3ndm``; FastV's ``2ndm`` shown too), so it is compared with the decoder
time. Target: measured >= 90% of predicted. The whole-prefill speed-up is lower by the work that
pruning does not touch (vision tower and projector over all 576 tokens), reported as its share.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

import tokcompress
from tokcompress.timing import time_paired

N_TEXT_BEFORE, N_IMAGE, N_TEXT_AFTER, KEEP = 8, 576, 56, 64
CONFIGS = [
    ("none", None),
    ("uniform", "uniform"),  # pre-LLM, content-free: the placement's floor cost
    ("divprune", "divprune"),  # pre-LLM, a real selector
    ("fastv", "fastv"),  # layer K=2, attention probe
    ("d2pruner", "d2pruner"),  # layer K=2, probe + debias + graph + MIS
]


def build_model(seed: int = 0):
    import transformers as tf

    text = tf.LlamaConfig(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8, num_attention_heads=16,
                          num_key_value_heads=16, vocab_size=32000, max_position_embeddings=4096, pad_token_id=0)
    vision = tf.CLIPVisionConfig(image_size=336, patch_size=14, hidden_size=64, intermediate_size=128,
                                 num_hidden_layers=1, num_attention_heads=4)
    config = tf.LlavaConfig(vision_config=vision, text_config=text, image_token_index=31999, image_seq_length=N_IMAGE,
                            vision_feature_layer=-1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = tf.LlavaForConditionalGeneration._from_config(config, attn_implementation="sdpa")
    return model.eval()


def build_inputs(model, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.cat([
        torch.randint(3, 31000, (N_TEXT_BEFORE,), generator=gen),
        torch.full((N_IMAGE,), model.config.image_token_id),
        torch.randint(3, 31000, (N_TEXT_AFTER,), generator=gen),
    ])[None]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "pixel_values": torch.randn(1, 3, 336, 336, generator=gen)}


class DecoderClock:
    """Wall time inside the language model, from hooks registered before any pruner's (so they run first)."""

    def __init__(self, decoder) -> None:
        self.start = self.ms = 0.0
        decoder.register_forward_pre_hook(self._enter)
        decoder.register_forward_hook(self._leave)

    def _enter(self, module, args) -> None:
        self.start = time.perf_counter()

    def _leave(self, module, args, output) -> None:
        self.ms = (time.perf_counter() - self.start) * 1000.0


def bare_decoder_runs(model, inputs) -> dict[int, object]:
    """Decoder calls fed `n` tokens directly (no tokcompress): the GEMMs' own efficiency at that size.

    They run in the same paired rounds as the configurations: the pruned prefill can at best run at
    this speed; the gap between it and the FLOPs prediction is the hardware's, the gap between it and
    a pruned prefill of the same round is ours.
    """
    decoder = model.model.language_model
    embeds = model.get_input_embeddings()(inputs["input_ids"])
    n_full = embeds.shape[1]
    sizes = {n_full: embeds, N_TEXT_BEFORE + N_TEXT_AFTER + KEEP:
             torch.cat([embeds[:, :N_TEXT_BEFORE + KEEP], embeds[:, N_TEXT_BEFORE + N_IMAGE:]], 1)}
    return {n: (lambda e=e: decoder(inputs_embeds=e, use_cache=True)) for n, e in sizes.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7, help="paired timing rounds after one warm-up round")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    model = build_model()
    inputs = build_inputs(model)
    clock = DecoderClock(model.model.language_model)
    n_text = N_TEXT_BEFORE + N_TEXT_AFTER
    visual = (inputs["input_ids"][0] == model.config.image_token_id).nonzero().flatten()
    pruners = {name: tokcompress.build_pruner(preset) for name, preset in CONFIGS if preset}
    handles: dict[str, object] = {}
    decoder_ms: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def attached(label: str, name: str, keep: int, freeze: bool = False):
        with tokcompress.attach(model, pruners[name], keep=keep) as handle:
            if freeze:  # every visual token through the whole machinery (probe, gathers, masks): the old fixed cost
                handle.freeze([visual])
            handles[label] = handle
            yield

    select_ms: dict[str, list[float]] = {}

    def forward(name: str):
        def run():
            model(**inputs, use_cache=True, logits_to_keep=1)
            decoder_ms.setdefault(name, []).append(clock.ms)
            stats = handles[name].stats if name in handles else None
            select_ms.setdefault(name, []).append(stats.select_seconds * 1e3 if stats is not None else 0.0)
        return run

    runs = {name: forward(name) for name, _ in CONFIGS}
    around = {name: (lambda n=name: attached(n, n, KEEP)) for name, preset in CONFIGS if preset}
    for label, freeze in (("fastv keep-all", False), ("fastv keep-all (machinery)", True)):
        runs[label] = forward(label)
        around[label] = lambda label=label, freeze=freeze: attached(label, "fastv", N_IMAGE, freeze)
    n_full, n_kept = n_text + N_IMAGE, n_text + KEEP
    bare_runs = {f"bare {n}": fn for n, fn in bare_decoder_runs(model, inputs).items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the keep-all rows warn that nothing is pruned: that is their point
        timing = time_paired({**runs, **bare_runs}, "none", rounds=args.rounds, warmup=1, around=around)
    bare = {n: timing.median_ms(f"bare {n}") for n in (n_full, n_kept)}
    rows = []
    for name in runs:
        dec = decoder_ms[name][1:]  # the warm-up round's first
        handle = handles.get(name)
        stats = handle.stats if handle is not None else None
        placement, layer = (stats.placement, stats.layer) if stats is not None else ("-", 0)
        paired_dec = statistics.median(b / x for b, x in zip(decoder_ms["none"][1:], dec))
        ratio = timing.speedup(name)
        row = {"config": name, "placement": placement, "layer": layer, "prefill_ms": timing.median_ms(name),
               "decoder_ms": statistics.median(dec), "prefill_runs_ms": timing.ms[name], "decoder_runs_ms": dec,
               "decoder_speedup": paired_dec, "prefill_speedup": ratio.median, "prefill_speedup_low": ratio.low,
               "prefill_speedup_high": ratio.high, "select_ms": stats.select_seconds * 1000.0 if stats else 0.0,
               "kept": stats.visual_after[0] if stats else N_IMAGE}
        row["outside_decoder_share"] = (row["prefill_ms"] - row["decoder_ms"]) / row["prefill_ms"]
        if stats is not None and not stats.skipped and row["kept"] < N_IMAGE:
            L = model.config.text_config.num_hidden_layers
            row["predicted_speedup"] = tokcompress.flops(model.config, n_text, N_IMAGE, KEEP, layer, mlp="swiglu").speedup
            row["predicted_speedup_fastv_formula"] = tokcompress.flops(model.config, n_text, N_IMAGE, KEEP, layer).speedup
            row["measured_over_predicted"] = paired_dec / row["predicted_speedup"]
            # The same layers fed their sizes directly, round by round: K layers at the full size, the rest kept.
            bare_ms = [(layer * f + (L - layer) * k) / L
                       for f, k in zip(timing.ms[f"bare {n_full}"], timing.ms[f"bare {n_kept}"])]
            row["bare_decoder_ms"] = statistics.median(bare_ms)
            row["bare_speedup"] = statistics.median(b / m for b, m in zip(decoder_ms["none"][1:], bare_ms))
            row["bare_over_predicted"] = row["bare_speedup"] / row["predicted_speedup"]
            row["our_overhead"] = statistics.median(d / m - 1 for d, m in zip(dec, bare_ms))
            # The same without the method's own selection (its scores, graph and picks): the machinery alone.
            row["machinery_overhead"] = statistics.median(
                (d - t) / m - 1 for d, t, m in zip(dec, select_ms[name][1:], bare_ms))
        rows.append(row)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"prefill, fp32 CPU, {timing.threads} thread(s): {n_text} text + {N_IMAGE} image tokens, keep {KEEP}; "
                        f"medians of {args.rounds} paired rounds (warm-up first, orders balanced over rounds)")
    for col in ("config", "where", "kept", "select ms", "decoder ms", "decoder speed-up", "predicted (SwiGLU)",
                "measured / predicted", "bare decoder / predicted", "our overhead", "without selection", "whole prefill ms",
                "whole speed-up"):
        table.add_column(col, justify="left" if col in ("config", "where") else "right")
    for r in rows:
        w = "-" if r["placement"] == "-" else (f"layer K={r['layer']}" if r["placement"] == "layer" else r["placement"])
        pred = r.get("predicted_speedup")
        table.add_row(r["config"], w, str(r["kept"]), f"{r['select_ms']:.1f}", f"{r['decoder_ms']:.0f}",
                      f"{r['decoder_speedup']:.2f}x", f"{pred:.2f}x" if pred else "-",
                      f"{r['measured_over_predicted']:.0%}" if pred else "-",
                      f"{r['bare_over_predicted']:.0%}" if pred else "-", f"{r['our_overhead']:+.1%}" if pred else "-",
                      f"{r['machinery_overhead']:+.1%}" if pred else "-",
                      f"{r['prefill_ms']:.0f}", f"{r['prefill_speedup']:.2f}x [{r['prefill_speedup_low']:.2f}-{r['prefill_speedup_high']:.2f}]")
    Console(width=190).print(table)
    none = next(r for r in rows if r["config"] == "none")
    for name in ("fastv keep-all", "fastv keep-all (machinery)"):
        r = next(r for r in rows if r["config"] == name)
        print(f"fixed cost with nothing pruned, {name}: {r['prefill_ms'] - none['prefill_ms']:+.1f} ms per prefill "
              f"(median ratio {r['prefill_speedup']:.3f})")
    print(f"bare decoder: {n_full} tokens {bare[n_full]:.0f} ms, {n_kept} tokens {bare[n_kept]:.0f} ms "
          f"(FLOPs ratio {tokcompress.flops(model.config, n_text, N_IMAGE, KEEP, 0, mlp='swiglu').speedup:.2f}x, "
          f"measured {bare[n_full] / bare[n_kept]:.2f}x)")
    meta = {"torch": torch.__version__, "threads": timing.threads, "rounds": args.rounds,
            "machine": platform.machine(), "processor": platform.processor(), "bare_decoder_ms": bare}
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Prefill speed-up of pruning inside a VLM on CPU, fp32, against the speed-up its FLOPs predict.

    python benchmarks/bench_prefill.py                  # 5 interleaved rounds, torch's default threads
    python benchmarks/bench_prefill.py --threads 1 --rounds 7 --json out.json

Model: LLaVA architecture built in code with a Llama-like decoder (hidden 1024, 8 layers, 16 heads,
SwiGLU MLP 2816) and a one-layer CLIP tower at 336 px / 14 (576 visual tokens); prompt 8 text + 576
image + 56 text tokens; keep 64. Prefill = one forward as ``generate``'s first step
(``use_cache=True``, ``logits_to_keep=1``). Two times per run: the *decoder* (from entering the
language model to leaving it: the pre-LLM selection and gathers, the layer-K probe and selection,
all decoder layers) and the *whole* prefill (plus vision tower, projector, embedding, LM head).
Configurations run interleaved, round after round, and medians are reported, because the machine
may be shared: a speed-up is the median over rounds of the ratio within each round (baseline and
configuration timed seconds apart, under the same load). Predicted speed-up = unpruned / pruned decoder FLOPs (`tokcompress.flops`, SwiGLU
count ``4nd^2 + 2n^2d + 3ndm``; FastV's ``2ndm`` shown too), so it is compared with the decoder
time. Target: measured >= 90% of predicted. The whole-prefill speed-up is lower by the work that
pruning does not touch (vision tower and projector over all 576 tokens), reported as its share.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import tokcompress

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


def prefill_ms(model, inputs, clock: DecoderClock) -> tuple[float, float]:
    start = time.perf_counter()
    model(**inputs, use_cache=True, logits_to_keep=1)
    return (time.perf_counter() - start) * 1000.0, clock.ms


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (median reported)")
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
    times: dict[str, list[float]] = {name: [] for name, _ in CONFIGS}
    decoder: dict[str, list[float]] = {name: [] for name, _ in CONFIGS}
    select: dict[str, list[float]] = {name: [] for name, _ in CONFIGS}
    where: dict[str, tuple[str, int]] = {}
    for name, preset in CONFIGS:  # warm-up, one each
        handle = tokcompress.attach(model, preset, keep=KEEP) if preset else None
        try:
            prefill_ms(model, inputs, clock)
            if handle is not None:
                where[name] = (handle.placement, handle.layer)
                assert handle.stats.visual_after == (KEEP,), handle.stats
        finally:
            if handle is not None:
                handle.remove()
    for r in range(args.rounds):
        for name, preset in CONFIGS:
            handle = tokcompress.attach(model, preset, keep=KEEP) if preset else None
            try:
                total, inside = prefill_ms(model, inputs, clock)
                times[name].append(total)
                decoder[name].append(inside)
                if handle is not None:
                    select[name].append(handle.stats.select_seconds * 1000.0)
            finally:
                if handle is not None:
                    handle.remove()
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {times[n][-1]:.0f} ms" for n, _ in CONFIGS), file=sys.stderr)
    base, base_dec = statistics.median(times["none"]), statistics.median(decoder["none"])
    rows = []
    for name, preset in CONFIGS:
        med, dec = statistics.median(times[name]), statistics.median(decoder[name])
        placement, layer = where.get(name, ("-", 0))
        # speed-ups paired within each round (same load), then the median over rounds
        paired_dec = statistics.median(b / x for b, x in zip(decoder["none"], decoder[name]))
        paired = statistics.median(b / x for b, x in zip(times["none"], times[name]))
        row = {"config": name, "placement": placement, "layer": layer, "prefill_ms": med, "decoder_ms": dec,
               "prefill_runs_ms": times[name], "decoder_runs_ms": decoder[name], "decoder_speedup": paired_dec,
               "prefill_speedup": paired, "decoder_speedup_of_medians": base_dec / dec,
               "prefill_speedup_of_medians": base / med, "outside_decoder_share": (med - dec) / med,
               "select_ms": statistics.median(select[name]) if select[name] else 0.0}
        if preset:
            row["predicted_speedup"] = tokcompress.flops(model.config, n_text, N_IMAGE, KEEP, layer, mlp="swiglu").speedup
            row["predicted_speedup_fastv_formula"] = tokcompress.flops(model.config, n_text, N_IMAGE, KEEP, layer).speedup
            row["measured_over_predicted"] = row["decoder_speedup"] / row["predicted_speedup"]
        rows.append(row)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"prefill, fp32 CPU, {torch.get_num_threads()} thread(s): {n_text} text + {N_IMAGE} image tokens, "
                        f"keep {KEEP}; medians of {args.rounds} interleaved rounds")
    for col in ("config", "where", "select ms", "decoder ms", "decoder speed-up", "predicted (SwiGLU)",
                "predicted (FastV)", "measured / predicted", "whole prefill ms", "whole speed-up", "outside decoder"):
        table.add_column(col, justify="left" if col in ("config", "where") else "right")
    for r in rows:
        w = "-" if r["placement"] == "-" else (f"layer K={r['layer']}" if r["placement"] == "layer" else r["placement"])
        pred = r.get("predicted_speedup")
        table.add_row(r["config"], w, f"{r['select_ms']:.1f}", f"{r['decoder_ms']:.0f}", f"{r['decoder_speedup']:.2f}x",
                      f"{pred:.2f}x" if pred else "-",
                      f"{r['predicted_speedup_fastv_formula']:.2f}x" if pred else "-",
                      f"{r['measured_over_predicted']:.0%}" if pred else "-",
                      f"{r['prefill_ms']:.0f}", f"{r['prefill_speedup']:.2f}x", f"{r['outside_decoder_share']:.0%}")
    Console(width=170).print(table)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "rounds": args.rounds,
            "machine": platform.machine(), "processor": platform.processor()}
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

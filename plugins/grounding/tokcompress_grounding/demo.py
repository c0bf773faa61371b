"""``make demo`` / ``tokcompress demo``: what pruning does to a model that learned something, and what it saves.

1. **Accuracy against budget** on the shipped grounding model (docs/grounding-model.md): the first
   ``--samples`` questions of its test set (half grounding: box IoU >= 0.5; half counting: exact word),
   unpruned and with d2pruner (its measured positional profile), fastv, divprune, uniform and random
   keeping 128 / 64 / 28 / 16 of 256 visual tokens. Run by the study tooling into
   ``OUT/results.sqlite`` (resumable), reported with the number of questions and 95% intervals; the
   report, tables and plots go to ``OUT/report``.
2. **What each pruner keeps**: one test image with the kept patches of each pruner side by side and
   the asked-for object's true box, ``OUT/kept-patches.png``.
3. **Speed-up where compute dominates**: the grounding model is far too small for pruning to pay off
   in wall time (its prefill is overhead-bound), so prefill is timed on a decoder of LLaVA-1.5's shape
   (576 visual tokens, a Llama-style decoder) with random weights, for timing only: measured speed-up
   (paired rounds, median [min-max]) against the speed-up its FLOPs predict, selection included.

    tokcompress demo [--samples 60] [--budgets 128 64 28 16] [--out runs/demo] [--threads N] [--timing-threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from tokcompress.command import Command, positive_int

PRUNERS = ("d2pruner", "fastv", "divprune", "uniform", "random")
"""The configurations the demo compares; ``d2pruner`` uses the grounding model's measured profile."""
OVERLAY_KEEP = 28
"""Budget of the picture: 28 of 256 tokens, the 0.111 share that 64 of 576 is for LLaVA-1.5."""
TIMING_PRESETS = ("d2pruner", "fastv", "divprune", "uniform")
"""Timed on the LLaVA-shaped decoder: two at layer K = 2, two before the decoder."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", type=positive_int, default=60, help="test questions per configuration, half of each task (default 60)")
    p.add_argument("--budgets", type=positive_int, nargs="+", default=[128, 64, 28, 16], help="visual tokens kept of 256")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for the results database, report and picture")
    p.add_argument("--timing-layers", type=positive_int, default=8, help="decoder layers of the timing model")
    p.add_argument("--timing-hidden", type=positive_int, default=1024, help="decoder width of the timing model")
    p.add_argument("--timing-keep", type=positive_int, default=64, help="visual tokens kept of 576 when timing")
    p.add_argument("--repeats", type=positive_int, default=7, help="paired timing rounds (after one warm-up round)")
    p.add_argument("--timing-threads", type=positive_int, default=1,
                   help="torch CPU threads while timing (default 1: on a shared machine, threads that wait for each "
                        "other in every small operation of a selection measure the machine, not the pruner)")
    p.add_argument("--no-timing", action="store_true", help="skip part 3")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's own)")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tokcompress demo", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    from tokcompress.errors import TokcompressError

    try:
        return _run(args)
    except TokcompressError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from rich.console import Console

    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console(width=max(Console().width, 120))
    console.rule("[bold]1. Task accuracy against budget: the trained grounding model (256 visual tokens)")
    _accuracy(args, console)
    console.rule("[bold]2. What each pruner keeps")
    _overlay(args, console)
    if not args.no_timing:
        console.rule("[bold]3. Prefill speed-up on a decoder of LLaVA-1.5's shape (random weights: timing only)")
        _timing(args, console)
    return 0


def demo_suite(samples: int, budgets: Sequence[int]) -> dict:
    """The study suite of part 1 (the study tooling runs it; nothing is evaluated twice on a rerun)."""
    return {
        "name": "demo",
        "description": "Demo: accuracy of the shipped grounding model against the visual-token budget.",
        "models": [{"source": "grounding", "label": "grounding-llava", "dtype": "float32", "device": "cpu"}],
        "dataset": {"name": "grounding-test", "limit": samples},
        "specs": [{"label": "d2pruner", "spec": {"extends": "d2pruner",
                                                  "debiaser": {"name": "position_prior", "profile": "grounding-llava-k2"}}},
                  *PRUNERS[1:]],
        "budgets": list(budgets),
        "metrics": ["grounding_acc", "exact_match", "flops_ratio"],
        "generation": {"max_new_tokens": 6},
        "timing": {"repeats": 1, "warmup": 0},
    }


def _accuracy(args: argparse.Namespace, console) -> None:
    from tokcompress.study.db import ResultsDB
    from tokcompress.study.report import build_tables, print_tables, write_report
    from tokcompress.study.runner import run_suite
    from tokcompress.study.suite import load_suite

    loaded = load_suite(demo_suite(args.samples, args.budgets), base_dir=args.out)
    db_path = args.out / "results.sqlite"
    args.out.mkdir(parents=True, exist_ok=True)
    with console.status(f"{args.samples} questions x (unpruned + {len(PRUNERS)} pruners x {len(args.budgets)} budgets) ..."):
        with ResultsDB(db_path) as db:
            summary = run_suite(loaded, db, progress=False)
            rows = db.rows({"suite": "demo"})
    tables = build_tables(rows, ["grounding_acc", "exact_match"])
    print_tables(tables, console)
    for spec, where in (("fastv", "pruning at layer 2 (fastv, d2pruner)"), ("uniform", "pruning before the decoder (others)")):
        flops = {r["budget"]: r["metrics"]["flops_ratio"] for r in rows if r["spec"] == spec}
        console.print(f"decoder FLOPs, {where}: " + ", ".join(
            f"{b} {v:.0%}" for b, v in sorted(flops.items(), key=lambda kv: -int(kv[0].split("=")[1]))) + " of unpruned")
    files = write_report(db_path, args.out / "report", suite="demo", quiet=True)  # the tables above; paired ones in the report
    half = args.samples // 2
    console.print(f"{args.samples - half} grounding and {half} counting questions per cell (intervals: 95%); "
                  f"{summary.written} rows computed now, {summary.skipped} reused from {db_path}")
    console.print(f"report: {files.html}")


def _overlay(args: argparse.Namespace, console) -> None:
    import tokcompress
    from tokcompress.hf.cli_generate import save_overlay
    from tokcompress.hf.compare import compare

    from . import format_prompt, load_default_model
    from .data import make_sample

    model, processor = load_default_model()
    sample = make_sample(0, "test", 0)
    inputs = dict(processor(images=[sample.image], text=[format_prompt(sample.prompt)], return_tensors="pt"))
    pruners = [tokcompress.build_pruner(_demo_spec(name)) for name in PRUNERS[:-1]]
    results = compare(model, inputs, pruners, keep=OVERLAY_KEEP, max_new_tokens=6, repeats=1, warmup=0,
                      decode=lambda ids: processor.decode(ids, skip_special_tokens=True))
    path = save_overlay(model, inputs, sample.image, results, args.out / "kept-patches.png", box=sample.box)
    console.print(f"question: {sample.prompt!r}, true box {list(sample.box)} (green); kept patches outlined")
    for r in results:
        console.print(f"  {r.name:>9}: {r.text.strip()!r}")
    console.print(f"picture: {path}")


def _demo_spec(name: str):
    if name == "d2pruner":
        return {"extends": "d2pruner", "name": "d2pruner",
                "debiaser": {"name": "position_prior", "profile": "grounding-llava-k2"}}
    return name


def _timing(args: argparse.Namespace, console) -> None:
    import torch

    from tokcompress.hf.compare import OVERHEAD_BOUND_MS, compare, render_table
    from tokcompress.hf.sample_inputs import ASSET, PROMPT, build_demo_model, tiny_inputs
    from PIL import Image

    model = build_demo_model(text_layers=args.timing_layers, text_hidden=args.timing_hidden)
    inputs = tiny_inputs(model, Image.open(ASSET), PROMPT)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.timing_threads)
    try:
        with console.status("timing prefill ..."):
            results = compare(model, inputs, list(TIMING_PRESETS), keep=args.timing_keep, max_new_tokens=1,
                              repeats=args.repeats, warmup=1)
    finally:
        torch.set_num_threads(threads)
    title = (f"random LLaVA-1.5-shaped model ({args.timing_layers} x {args.timing_hidden} Llama decoder, 576 visual "
             f"tokens, prompt {inputs['input_ids'].shape[1]} tokens): timing only, the weights are random")
    console.print(render_table(results, title))
    if results[0].prefill_median_ms < OVERHEAD_BOUND_MS:
        console.print(f"unpruned prefill {results[0].prefill_median_ms:.1f} ms: overhead-bound, so no speed-up is quoted "
                      "(use a larger --timing-hidden / --timing-layers)")
    for r in results[1:] if results[0].prefill_median_ms >= OVERHEAD_BOUND_MS else []:
        if r.speedup is not None:
            console.print(f"  {r.name:>9}: measured {r.speedup.median:.2f}x = {r.speedup.median / r.predicted_speedup:.0%} "
                          f"of the {r.predicted_speedup:.2f}x its decoder FLOPs predict (selection {r.select_ms:.1f} ms)")
    console.print(f"{results[0].threads} thread(s); {args.repeats} paired rounds after a warm-up; FLOPs: decoder layers, "
                  "FastV formula (tokcompress.flops)")


class DemoCommand(Command):
    name = "demo"
    help = "what pruning does to the shipped grounding model (accuracy, kept patches) and what it saves (make demo)"
    add_arguments = staticmethod(add_arguments)
    run = staticmethod(run)


if __name__ == "__main__":
    sys.exit(main())

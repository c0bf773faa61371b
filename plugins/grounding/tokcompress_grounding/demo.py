"""``make demo``: a small LLaVA-architecture model, unpruned and with D2Pruner and FastV.

With no arguments (``--model grounding``), loads the project's trained grounding model (its weights ship
in the package: docs/grounding-model.md) and prints task accuracy on the first ``--samples`` questions
of its test set (boxes scored by IoU >= 0.5, counts by the exact word), unpruned and with each pruner
keeping 28 of its 256 visual tokens, then test question 0 in detail: visual tokens kept, decoder FLOPs
reduction, measured prefill time and speed-up, the answers.

``--model random`` builds a random LLaVA (CLIP ViT 336 px / 14 -> 576 visual tokens, 8-layer Llama
decoder) in code and runs it on the bundled image and prompt: the weights are random, so the text is
noise; the table shows the mechanics and the cost at LLaVA-1.5's token count. ``--model PATH`` runs a
checkpoint from a local directory on ``--image`` / ``--prompt``.

    tokcompress demo [--model grounding|random|PATH] [--samples 100] [--keep N] [--presets d2pruner fastv]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from tokcompress.command import Command
from tokcompress.hf.sample_inputs import ASSET, PROMPT

GROUNDING_KEEP = 28
"""Default budget for the grounding model: 28 of its 256 visual tokens, the 0.111 ratio of 64 of 576."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="grounding",
                   help="'grounding' (the project's trained grounding model, default: docs/grounding-model.md), "
                        "'random' (a random LLaVA-1.5-shaped model built in code), or a local checkpoint directory (from_pretrained)")
    p.add_argument("--samples", type=int, default=100, help="test questions scored per configuration (grounding model)")
    p.add_argument("--image", type=Path, default=ASSET, help="image file for --model random|PATH (default: the bundled demo.png)")
    p.add_argument("--prompt", default=PROMPT, help="prompt for --model random|PATH")
    p.add_argument("--presets", nargs="+", default=["d2pruner", "fastv"], help="pruners to compare with no pruning")
    p.add_argument("--keep", type=int, help="visual tokens kept per sample (default: 28 of 256 for the grounding model, "
                                            "64 otherwise: both about 11%%)")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5, help="prefill timings per configuration (median reported)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    p.add_argument("--text-layers", type=int, default=8, help="decoder layers of --model random")
    p.add_argument("--text-hidden", type=int, default=512, help="decoder width of --model random")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tokcompress demo", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    from tokcompress.errors import TokcompressError

    if args.samples < 1:
        print(f"error: --samples must be >= 1, got {args.samples}", file=sys.stderr)
        return 2
    if args.keep is None:
        args.keep = GROUNDING_KEEP if args.model == "grounding" else 64
    try:
        return _run(args)
    except TokcompressError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from PIL import Image
    from rich.console import Console

    from tokcompress.hf.compare import bytes_text, compare, render_table
    from tokcompress.hf.sample_inputs import build_demo_model, checkpoint_inputs, tiny_inputs

    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console(width=max(Console().width, 120))
    accuracy = None
    if args.model == "grounding":
        model, inputs, decode, title, accuracy = _grounding(args, console)
    elif args.model == "random":
        model = build_demo_model(text_layers=args.text_layers, text_hidden=args.text_hidden)
        inputs, decode = tiny_inputs(model, Image.open(args.image), args.prompt), bytes_text
        title = (f"random LLaVA-1.5-shaped model built in code ({args.text_layers} x {args.text_hidden} Llama decoder, "
                 f"576 visual tokens); prompt {inputs['input_ids'].shape[1]} tokens")
    else:
        model, inputs, decode = checkpoint_inputs(args.model, Image.open(args.image), args.prompt)
        title = f"{Path(args.model).name}: {type(model).__name__}"
    with console.status("generating and timing prefill ..."):
        results = compare(model, inputs, args.presets, keep=args.keep, max_new_tokens=args.max_new_tokens,
                          repeats=args.repeats, decode=decode,
                          generate_kwargs={"suppress_tokens": list(range(990, 1000))} if args.model == "random" else {})
    if args.json:
        import json

        rows = [r.as_dict() | ({"accuracy": accuracy[r.name].as_dict()} if accuracy else {}) for r in results]
        print(json.dumps(rows, indent=2))
        return 0
    if accuracy:
        console.print(_accuracy_table(accuracy, args.keep))
    console.print(render_table(results, title))
    console.print(f"threads: {torch.get_num_threads()}; prefill = one forward as generate's first step "
                  f"(median of {args.repeats}, runs interleaved); FLOPs: decoder layers, FastV formula (tokcompress.flops)")
    if args.model == "random":
        console.print("[dim]random weights: the generated text is noise. 'same tokens': leading generated tokens "
                      "equal to the unpruned model's[/]")
    for r in results:
        console.print(f"[bold]{r.name}[/]: {r.text!r}")
    return 0


def _grounding(args: argparse.Namespace, console):
    """The shipped grounding model: accuracy of every configuration on test questions, and question 0 in detail."""
    from . import format_prompt, load_default_model
    from .data import make_sample
    from .evaluate import accuracy_with_pruners

    model, processor = load_default_model()
    samples = [make_sample(0, "test", i) for i in range(args.samples)]
    with console.status(f"answering {len(samples)} test questions per configuration ..."):
        accuracy = accuracy_with_pruners(model, processor, samples, args.presets, keep=args.keep)
    first = samples[0]
    inputs = dict(processor(images=[first.image], text=[format_prompt(first.prompt)], return_tensors="pt"))
    title = f"trained grounding model: {first.prompt!r} (true box {first.answer!r}); prompt {inputs['input_ids'].shape[1]} tokens"
    return model, inputs, lambda ids: processor.decode(ids, skip_special_tokens=True), title, accuracy


def _accuracy_table(accuracy, keep: int):
    from rich.table import Table

    first = next(iter(accuracy.values()))
    table = Table(title=f"task accuracy on {first.n_grounding} grounding + {first.n_counting} counting test questions "
                        f"(pruners keep {keep} of 256 visual tokens)")
    for column in ("pruner", "grounding (IoU >= 0.5)", "counting (exact)"):
        table.add_column(column, justify="left" if column == "pruner" else "right")
    for name, r in accuracy.items():
        table.add_row(name, f"{r.grounding:.1%}", f"{r.counting:.1%}")
    return table


class DemoCommand(Command):
    name = "demo"
    help = "the shipped grounding model unpruned and pruned: task accuracy, FLOPs, prefill time (make demo)"
    add_arguments = staticmethod(add_arguments)
    run = staticmethod(run)


if __name__ == "__main__":
    sys.exit(main())

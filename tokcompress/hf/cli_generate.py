"""``tokcompress generate``: prune while generating with a VLM and compare with no pruning.

    tokcompress generate --model ./llava-1.5-7b-hf --image cat.png --prompt "What is this?" --preset d2pruner fastv --keep 64
    tokcompress generate --family qwen2_vl --preset fastv --ratio 0.25     # a tiny random model, no files needed

Prints the table of ``tokcompress demo`` (kept tokens, FLOPs reduction, prefill time and
speed-up, generated tokens equal to the unpruned run) and each configuration's generated text.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..command import Command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .tiny import FAMILIES

    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="local checkpoint directory, loaded with from_pretrained")
    source.add_argument("--family", choices=FAMILIES, help="a tiny random model of this family built in code (default: llava)")
    parser.add_argument("--preset", nargs="+", default=["d2pruner", "fastv"], help="preset names or spec files (default: d2pruner fastv)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--keep", type=int, help="visual tokens kept per sample (default 64)")
    budget.add_argument("--ratio", type=float, help="fraction of visual tokens kept per sample")
    parser.add_argument("--image", type=Path, help="image file (--model; default: the bundled demo image)")
    parser.add_argument("--prompt", help="question about the image")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="prefill timings per configuration (median reported)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    import json

    import torch
    from rich.console import Console

    from . import sample_inputs as demo
    from .compare import bytes_text, compare, render_table

    if args.threads:
        torch.set_num_threads(args.threads)
    prompt = args.prompt or demo.PROMPT
    keep = args.keep if args.keep is not None or args.ratio is not None else 64
    if args.model:
        from PIL import Image

        model, inputs, decode = demo.checkpoint_inputs(args.model, Image.open(args.image or demo.ASSET), prompt)
        title, extra = f"{Path(args.model).name}: {type(model).__name__}", {}
    else:
        model, inputs = _tiny(args.family or "llava", prompt)
        decode, title = bytes_text, f"tiny random {args.family or 'llava'} model (weights random: text is noise)"
        extra = {"suppress_tokens": list(range(990, 1000))}
    results = compare(model, inputs, args.preset, keep=keep, ratio=args.ratio, max_new_tokens=args.max_new_tokens,
                      repeats=args.repeats, decode=decode, generate_kwargs=extra)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
        return 0
    console = Console(width=max(Console().width, 120))
    console.print(render_table(results, title))
    for r in results:
        console.print(f"[bold]{r.name}[/]: {r.text!r}")
    return 0


def _tiny(family: str, prompt: str):
    """A tiny model and one prompt: byte-level text around one image (random pixels)."""
    import torch

    from . import tiny
    from .compare import byte_tokens

    model, _ = tiny.build_tiny_model(family)
    prefix, suffix = [tiny.BOS] + byte_tokens("USER: "), byte_tokens(f"\n{prompt} ASSISTANT:")
    inputs = tiny.make_inputs(model, [[len(prefix), tiny.Image(), len(suffix)]])
    ids = inputs["input_ids"]
    ids[0, : len(prefix)] = torch.tensor(prefix)
    ids[0, ids.shape[1] - len(suffix):] = torch.tensor(suffix)
    return model, inputs


class GenerateCommand(Command):
    name = "generate"
    help = "generate with a VLM, pruned and unpruned: kept tokens, FLOPs, prefill time"
    add_arguments = staticmethod(add_arguments)
    run = staticmethod(run)

"""``tokcompress generate``: prune while generating with a VLM and compare with no pruning.

    tokcompress generate --model ./llava-1.5-7b-hf --image cat.png --prompt "What is this?" --preset d2pruner fastv --keep 64
    tokcompress generate --family qwen2_vl --preset fastv --ratio 0.25     # a tiny random model, no files needed

Prints kept tokens, FLOPs reduction and the speed-up it predicts, prefill time and the measured
speed-up (paired rounds; not shown for an overhead-bound model such as the tiny ones), generated
tokens equal to the unpruned run, and each configuration's text. ``--save-overlay PNG`` draws the
image once per configuration with the kept patches.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..command import Command, positive_int


DEFAULT_RATIO = 0.25
"""Budget when neither --keep nor --ratio is given: a quarter of every sample's visual tokens, so the
default prunes any model (4 of the tiny LLaVA's 16 tokens, 144 of LLaVA-1.5's 576)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .tiny import FAMILIES

    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="local checkpoint directory, loaded with from_pretrained")
    source.add_argument("--family", choices=FAMILIES, help="a tiny random model of this family built in code (default: llava)")
    parser.add_argument("--preset", nargs="+", default=["d2pruner", "fastv"], help="preset names or spec files (default: d2pruner fastv)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--keep", type=int, help="visual tokens kept per sample")
    budget.add_argument("--ratio", type=float, help=f"fraction of visual tokens kept per sample (default {DEFAULT_RATIO})")
    parser.add_argument("--image", type=Path, help="image file (--model; default: the bundled demo image)")
    parser.add_argument("--prompt", help="question about the image")
    parser.add_argument("--max-new-tokens", type=positive_int, default=16)
    parser.add_argument("--repeats", type=positive_int, default=5, help="paired timing rounds after one warm-up round")
    parser.add_argument("--save-overlay", type=Path, metavar="PNG", help="write the image with each configuration's kept patches")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's own)")
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
    ratio = args.ratio if args.keep is not None or args.ratio is not None else DEFAULT_RATIO
    from PIL import Image

    image = Image.open(args.image or demo.ASSET).convert("RGB")
    if args.model:
        from ..study.models import checkpoint_path

        model, inputs, decode = demo.checkpoint_inputs(checkpoint_path(args.model), image, prompt)
        title, extra = f"{Path(args.model).name}: {type(model).__name__}", {}
    else:
        model, inputs = _tiny(args.family or "llava", prompt)
        decode, title = bytes_text, f"tiny random {args.family or 'llava'} model (weights random: text is noise)"
        extra = {"suppress_tokens": list(range(990, 1000))}
    results = compare(model, inputs, args.preset, keep=args.keep, ratio=ratio, max_new_tokens=args.max_new_tokens,
                      repeats=args.repeats, decode=decode, generate_kwargs=extra)
    if args.save_overlay:
        save_overlay(model, inputs, image, results, args.save_overlay)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
        return 0
    console = Console(width=max(Console().width, 120))
    console.print(render_table(results, title))
    for r in results:
        console.print(f"[bold]{r.name}[/]: {r.text!r}")
    if args.save_overlay:
        console.print(f"kept patches: {args.save_overlay}")
    return 0


def save_overlay(model, inputs, image, results, path: Path, box=None) -> Path:
    """The image once per configuration of `results`, kept patches outlined (first row of the batch)."""
    from .adapters import CallInputs, find_adapter
    from .overlay import draw_overlay, visual_indices

    adapter = find_adapter(model)
    ids = inputs["input_ids"]
    call = CallInputs(ids, ids == adapter.image_token_id, inputs.get("attention_mask"),
                      {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")})
    layout = adapter.row_layouts(call)[0]
    panels = [(r.name, None if r.selection is None else visual_indices(ids[0], adapter.image_token_id, r.selection[0]))
              for r in results]
    draw_overlay(image, layout, panels, path, box=box)
    return Path(path)


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

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

    python -m tokcompress.demo [--model grounding|random|PATH] [--samples 100] [--keep N] [--presets d2pruner fastv]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

ASSET = Path(__file__).parent / "hf" / "assets" / "demo.png"
PROMPT = "What is in this picture? Describe the shapes and their colours."
GROUNDING_KEEP = 28
"""Default budget for the grounding model: 28 of its 256 visual tokens, the 0.111 ratio of 64 of 576."""


def draw_demo_image(size: int = 336):
    """The bundled demo image, drawn deterministically (a few coloured shapes on a gradient)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size))
    px = img.load()
    for y in range(size):
        for x in range(size):
            px[x, y] = (40 + 120 * x // size, 60 + 100 * y // size, 150)
    d = ImageDraw.Draw(img)
    s = size / 336
    d.ellipse([40 * s, 50 * s, 150 * s, 160 * s], fill=(230, 60, 50))
    d.rectangle([190 * s, 70 * s, 300 * s, 180 * s], fill=(250, 210, 40))
    d.polygon([(70 * s, 300 * s), (170 * s, 190 * s), (270 * s, 300 * s)], fill=(40, 170, 90))
    d.line([(0, 320 * s), (size, 250 * s)], fill=(255, 255, 255), width=max(1, int(6 * s)))
    return img


def build_demo_model(seed: int = 0, *, text_layers: int = 8, text_hidden: int = 512, image_size: int = 336):
    """A random LLaVA-1.5-shaped model: CLIP 336/14 (576 tokens, 2 layers), Llama decoder (8 x 512, SwiGLU)."""
    from .hf.tiny import build_tiny_model

    model, _ = build_tiny_model("llava", seed, text_layers=text_layers, text_hidden=text_hidden,
                                text_heads=8, text_kv_heads=8, text_intermediate=int(text_hidden * 2.6875),
                                image_size=image_size)
    return model


def tiny_inputs(model, image, prompt: str):
    """LLaVA-1.5 prompt ``USER: <image>\\n{prompt} ASSISTANT:`` with a byte-level tokenizer, CLIP preprocessing."""
    import torch
    import transformers

    from .hf.compare import byte_tokens
    from .hf.tiny import BOS, IMAGE_ID

    size = model.config.vision_config.image_size
    cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    processor = cls(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    pixels = processor(images=[image.convert("RGB")], return_tensors="pt")["pixel_values"]
    n_image = model.config.image_seq_length
    ids = [BOS] + byte_tokens("USER: ") + [IMAGE_ID] * n_image + byte_tokens(f"\n{prompt} ASSISTANT:")
    return {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
            "pixel_values": pixels}


def checkpoint_inputs(path: str, image, prompt: str):
    """(model, inputs, decode) for a local checkpoint directory, via its processor and chat template."""
    import transformers

    processor = transformers.AutoProcessor.from_pretrained(path)
    model = transformers.AutoModelForImageTextToText.from_pretrained(path, dtype="auto").eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    try:
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
    except Exception:  # no chat template: the LLaVA-1.5 plain format
        text = f"USER: <image>\n{prompt} ASSISTANT:"
    inputs = processor(images=[image.convert("RGB")], text=[text], return_tensors="pt")
    return model, dict(inputs), lambda ids: processor.decode(ids, skip_special_tokens=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tokcompress.demo", description=__doc__.splitlines()[0])
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
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import TokcompressError

    args = parse_args(argv)
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

    from .hf.compare import bytes_text, compare, render_table

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
    from .grounding import format_prompt, load_default_model
    from .grounding.data import make_sample
    from .grounding.evaluate import accuracy_with_pruners

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


if __name__ == "__main__":
    sys.exit(main())

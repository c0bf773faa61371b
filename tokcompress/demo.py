"""``make demo``: generate with a small LLaVA-architecture model, unpruned and with D2Pruner and FastV.

With no arguments, builds a random LLaVA (CLIP ViT 336 px / 14 -> 576 visual tokens, 8-layer Llama
decoder) in code, feeds it the bundled image and prompt, and prints a table: visual tokens kept,
decoder FLOPs reduction, measured prefill time and speed-up, and how many generated tokens agree
with the unpruned model. The weights are random, so the text is noise; what the table shows is
the mechanics and the cost. ``--model PATH`` runs a real checkpoint from a local directory instead.

    python -m tokcompress.demo [--model PATH] [--image PNG] [--prompt TEXT] [--keep 64] [--presets d2pruner fastv]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

ASSET = Path(__file__).parent / "hf" / "assets" / "demo.png"
PROMPT = "What is in this picture? Describe the shapes and their colours."


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
    p.add_argument("--model", help="local checkpoint directory (from_pretrained); default: a random LLaVA built in code")
    p.add_argument("--image", type=Path, default=ASSET, help="image file (default: the bundled demo.png)")
    p.add_argument("--prompt", default=PROMPT)
    p.add_argument("--presets", nargs="+", default=["d2pruner", "fastv"], help="pruners to compare with no pruning")
    p.add_argument("--keep", type=int, default=64, help="visual tokens kept per sample")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5, help="prefill timings per configuration (median reported)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    p.add_argument("--text-layers", type=int, default=8, help="decoder layers of the built-in model")
    p.add_argument("--text-hidden", type=int, default=512, help="decoder width of the built-in model")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import TokcompressError

    args = parse_args(argv)
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
    image = Image.open(args.image)
    if args.model:
        model, inputs, decode = checkpoint_inputs(args.model, image, args.prompt)
        title = f"{Path(args.model).name}: {type(model).__name__}"
    else:
        model = build_demo_model(text_layers=args.text_layers, text_hidden=args.text_hidden)
        inputs, decode = tiny_inputs(model, image, args.prompt), bytes_text
        title = (f"random LLaVA-1.5-shaped model built in code ({args.text_layers} x {args.text_hidden} Llama decoder, "
                 f"576 visual tokens); prompt {inputs['input_ids'].shape[1]} tokens")
    with console.status("generating and timing prefill ..."):
        results = compare(model, inputs, args.presets, keep=args.keep, max_new_tokens=args.max_new_tokens,
                          repeats=args.repeats, decode=decode,
                          generate_kwargs={} if args.model else {"suppress_tokens": list(range(990, 1000))})
    if args.json:
        import json

        print(json.dumps([r.as_dict() for r in results], indent=2))
        return 0
    console.print(render_table(results, title))
    console.print(f"threads: {torch.get_num_threads()}; prefill = one forward as generate's first step "
                  f"(median of {args.repeats}, runs interleaved); FLOPs: decoder layers, FastV formula (tokcompress.flops)")
    if not args.model:
        console.print("[dim]random weights: the generated text is noise. 'same tokens': leading generated tokens "
                      "equal to the unpruned model's[/]")
    for r in results:
        console.print(f"[bold]{r.name}[/]: {r.text!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Inputs for one-prompt comparisons (``tokcompress generate``, the demo): the bundled image, a random
LLaVA-1.5-shaped model built in code, and prompts for tiny models or a local checkpoint."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ASSET", "PROMPT", "draw_demo_image", "build_demo_model", "tiny_inputs", "checkpoint_inputs"]

ASSET = Path(__file__).parent / "assets" / "demo.png"
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
    from .tiny import build_tiny_model

    model, _ = build_tiny_model("llava", seed, text_layers=text_layers, text_hidden=text_hidden,
                                text_heads=8, text_kv_heads=8, text_intermediate=int(text_hidden * 2.6875),
                                image_size=image_size)
    return model


def tiny_inputs(model, image, prompt: str):
    """LLaVA-1.5 prompt ``USER: <image>\\n{prompt} ASSISTANT:`` with a byte-level tokenizer, CLIP preprocessing."""
    import torch
    import transformers

    from .compare import byte_tokens
    from .tiny import BOS, IMAGE_ID

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



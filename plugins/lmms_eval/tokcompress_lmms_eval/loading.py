"""Load the model behind ``pretrained`` and turn prompts (chat messages + PIL images) into model inputs.

Checkpoints (a folder or hub id of any supported family) and the shipped grounding model go through
their processor: one user turn rendered by its chat template (plain ``<image>\\n`` + text without one),
left-padded batches. ``tiny-<family>`` builds a random model in code with the study tooling's byte
tokenizer (`tokcompress.study.models`), one prompt at a time: only shapes and costs mean anything there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from tokcompress.errors import InputError

from .options import PluginOptions

__all__ = ["Prompt", "LoadedVLM", "load_vlm", "resolve_device"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class Prompt:
    """One request's prompt: chat messages whose image items are ``{"type": "image"}``, and the images in order."""

    messages: list[dict[str, Any]]
    images: list[Any] = field(default_factory=list)
    key: str = ""
    """Stable id of the sample (seeds the pixels of tiny non-LLaVA models)."""

    @property
    def text(self) -> str:
        return "\n".join(c["text"] for m in self.messages for c in m["content"] if c["type"] == "text")


def resolve_device(device: str | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"model_args device: {device!r} is not a torch device ({exc})") from None


class LoadedVLM:
    """A model with its prompt encoder; ``max_batch`` is the largest batch ``encode`` accepts."""

    max_batch: int | None = None

    def __init__(self, model, device: torch.device, eos_ids: frozenset[int], pad_id: int | None) -> None:
        self.model, self.device, self.eos_ids, self.pad_id = model, device, eos_ids, pad_id

    @property
    def image_token_id(self) -> int:
        cfg = self.model.config
        value = getattr(cfg, "image_token_id", None)
        return int(value if value is not None else cfg.image_token_index)

    def encode(self, prompts: list[Prompt]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def continuation_ids(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def _to_device(self, inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        dtype = self.model.dtype
        return {k: (v.to(self.device, dtype=dtype) if v.is_floating_point() else v.to(self.device))
                for k, v in inputs.items() if isinstance(v, torch.Tensor)}


class ProcessorVLM(LoadedVLM):
    """A ``from_pretrained`` checkpoint and its processor (the path `tokcompress ablate` takes for checkpoints)."""

    def __init__(self, model, processor, device: torch.device) -> None:
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.tokenizer.padding_side = "left"
        self.has_template = bool(getattr(processor, "chat_template", None))
        self.image_token = getattr(processor, "image_token", None) or "<image>"
        gen = model.generation_config
        eos = gen.eos_token_id
        eos_ids = frozenset(eos if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else []))
        pad = gen.pad_token_id if gen.pad_token_id is not None else getattr(self.tokenizer, "pad_token_id", None)
        super().__init__(model, device, eos_ids, pad)

    def render(self, prompt: Prompt) -> str:
        if self.has_template:
            return self.processor.apply_chat_template(prompt.messages, add_generation_prompt=True)
        text = prompt.text
        missing = len(prompt.images) - text.count(self.image_token)
        return f"{self.image_token}\n" * max(0, missing) + text

    def encode(self, prompts: list[Prompt]) -> dict[str, torch.Tensor]:
        if len(prompts) > 1 and self.pad_id is None:
            raise InputError("batch_size > 1 needs a pad token, and this checkpoint's tokenizer and generation config "
                             "define none; use batch_size=1")
        images = [im for p in prompts for im in p.images]
        inputs = self.processor(images=images or None, text=[self.render(p) for p in prompts], padding=True,
                                return_tensors="pt")
        return self._to_device(dict(inputs))

    def continuation_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()


class TinyVLM(LoadedVLM):
    """A random ``tiny-<family>`` model (`tokcompress.study.models`): byte tokens, one prompt per call."""

    max_batch = 1

    def __init__(self, loaded) -> None:
        self.loaded = loaded
        super().__init__(loaded.model, loaded.device, loaded.eos_ids, loaded.pad_id)

    def encode(self, prompts: list[Prompt]) -> dict[str, torch.Tensor]:
        if len(prompts) != 1:
            raise InputError(f"tiny models take one prompt per call, got {len(prompts)}")
        prompt = prompts[0]
        if len(prompt.images) != 1:
            raise InputError(f"tiny models take exactly one image per prompt, got {len(prompt.images)} (sample {prompt.key})")
        return self.loaded.prepare(_TinySample(prompt.key, prompt.text, prompt.images[0]))

    def continuation_ids(self, text: str) -> list[int]:
        from tokcompress.study.models import encode_bytes

        return encode_bytes(text)

    def decode(self, ids: list[int]) -> str:
        return self.loaded.decode(ids).strip()


@dataclass(frozen=True)
class _TinySample:
    """What `tokcompress.study.models` reads of a `Sample`: its id, prompt and image."""

    id: str
    prompt: str
    image: Any

    def load_image(self):
        return self.image.convert("RGB")


def load_vlm(options: PluginOptions) -> LoadedVLM:
    """The model of ``pretrained``, in eval mode on ``device``."""
    from tokcompress.study.models import tiny_family

    device = resolve_device(options.device)
    source = options.pretrained
    if tiny_family(source) is not None:
        from tokcompress.study.models import load_model
        from tokcompress.study.suite import ModelEntry

        dtype = "float32" if options.dtype == "auto" else options.dtype
        entry = ModelEntry(source=source, dtype=dtype, device=str(device),
                           attn_implementation=options.attn_implementation or "sdpa")
        return TinyVLM(load_model(entry))
    from tokcompress.study.models import checkpoint_path

    path = checkpoint_path(source)  # a registered model source or a local folder: never the hub
    from transformers import AutoModelForImageTextToText, AutoProcessor

    dtype = "auto" if options.dtype == "auto" else _DTYPES[options.dtype]
    try:
        processor = AutoProcessor.from_pretrained(path)
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype,
                                                            attn_implementation=options.attn_implementation)
    except (OSError, ValueError) as exc:
        raise InputError(f"model_args pretrained: cannot load {source!r} as an image-text-to-text checkpoint "
                         f"(a local folder, a registered model source or tiny-<family>): {exc}") from None
    return ProcessorVLM(model.to(device).eval(), processor, device)

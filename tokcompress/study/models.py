"""Load a suite's model and turn a `Sample` into model inputs: tiny random models or real checkpoints.

``tiny-<family>`` builds a random model of that family in code (`tokcompress.hf.tiny`); its text
goes through a byte-level stand-in tokenizer (token ``3 + byte``), and LLaVA images through a CLIP
image processor sized to the tiny vision tower. Other tiny families keep the seeded random pixels of
`tokcompress.hf.tiny.make_inputs`: their weights are random, so only shapes, costs and agreement
with the unpruned run mean anything. A registered model source (e.g. ``grounding``, shipped by the
grounding plugin) is its local folder. Anything else must be a local checkpoint folder, loaded with
``AutoModelForImageTextToText`` and ``AutoProcessor`` (never downloaded); the prompt goes through the processor's chat
template (one user turn: the image, then the text) when it has one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch

from ..errors import InputError, unknown_name
from .datasets import Sample

if TYPE_CHECKING:
    from .suite import ModelEntry

__all__ = ["LoadedModel", "load_model", "resolve_device", "TINY_PREFIX", "checkpoint_path", "tiny_family", "encode_bytes", "decode_bytes"]

TINY_PREFIX = "tiny-"
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_BYTE_OFFSET = 3  # ids 0-2 are pad/bos/eos in the tiny models


@dataclass
class LoadedModel:
    """A model ready to run: ``prepare(sample)`` gives batch-of-one inputs on the model's device."""

    name: str
    source: str
    model: Any
    device: torch.device
    prepare: Callable[[Sample], dict[str, torch.Tensor]]
    decode: Callable[[list[int]], str]
    eos_ids: frozenset[int]
    pad_id: int | None
    info: dict[str, Any] = field(default_factory=dict)


def resolve_device(device: str) -> torch.device:
    """``auto`` (CUDA when available), or a torch device that exists on this machine."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"model field 'device': {device!r} is not a torch device (expected auto, cpu, cuda, cuda:N)"
                         f": {str(exc)[:120]}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"model field 'device': {device!r}, but this torch has no usable CUDA device "
                             f"(torch {torch.__version__}); use 'cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"model field 'device': {device!r}, but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif dev.type not in ("cpu", "mps", "xpu"):
        raise InputError(f"model field 'device': {device!r} is not supported (expected auto, cpu, cuda, cuda:N)")
    return dev


def tiny_family(source: str) -> str | None:
    """``tiny-llava-next`` -> ``llava_next``; None for a non-tiny source. Unknown families are errors."""
    if not source.startswith(TINY_PREFIX):
        return None
    from ..hf.tiny import FAMILIES

    family = source[len(TINY_PREFIX):].replace("-", "_")
    if family not in FAMILIES:
        raise InputError(unknown_name("tiny model", source, [TINY_PREFIX + f.replace("_", "-") for f in FAMILIES]))
    return family


def encode_bytes(text: str) -> list[int]:
    """The tiny models' stand-in tokenizer: one token per UTF-8 byte."""
    return [_BYTE_OFFSET + b for b in text.encode()]


def decode_bytes(ids: list[int]) -> str:
    """Inverse of `encode_bytes`; ids outside the byte range are dropped."""
    return bytes(i - _BYTE_OFFSET for i in ids if _BYTE_OFFSET <= i < _BYTE_OFFSET + 256).decode(errors="replace")


def load_model(entry: ModelEntry) -> LoadedModel:
    device = resolve_device(entry.device)
    family = tiny_family(entry.source)
    if family is not None:
        return _load_tiny(entry, family, device)
    return _load_checkpoint(entry, device)


# -- tiny ---------------------------------------------------------------------------------------------


def _seed_of(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def _load_tiny(entry: ModelEntry, family: str, device: torch.device) -> LoadedModel:
    from ..hf import tiny

    try:
        model, _ = tiny.build_tiny_model(family, seed=entry.seed, attn_implementation=entry.attn_implementation or "sdpa",
                                         **entry.tiny)
    except TypeError as exc:
        raise InputError(f"model {entry.name!r}: bad 'tiny' options {entry.tiny}: {exc}") from None
    model = model.to(device=device, dtype=_DTYPES[entry.dtype]).eval()
    pixels = _clip_pixels(model.config) if family == "llava" else None

    def prepare(sample: Sample) -> dict[str, torch.Tensor]:
        prefix = [tiny.BOS] + encode_bytes("USER: ")
        suffix = encode_bytes("\n" + sample.prompt + " ASSISTANT:")
        # image ids (with the family's wrapper tokens) and tensors from the tiny builder; text spliced in
        inputs = tiny.make_inputs(model, [[len(prefix), tiny.Image(), len(suffix)]], seed=_seed_of(sample.id))
        ids = inputs["input_ids"]
        ids[0, : len(prefix)] = torch.tensor(prefix)
        ids[0, ids.shape[1] - len(suffix):] = torch.tensor(suffix)
        if pixels is not None:
            inputs["pixel_values"] = pixels(sample)
        return {k: v.to(device=device, dtype=_DTYPES[entry.dtype] if v.is_floating_point() else v.dtype)
                for k, v in inputs.items()}

    return LoadedModel(entry.name, entry.source, model, device, prepare, decode_bytes, frozenset({tiny.EOS}), tiny.PAD,
                       {"family": family, "tiny": True})


def _clip_pixels(config) -> Callable[[Sample], torch.Tensor]:
    import transformers

    size = config.vision_config.image_size
    cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    processor = cls(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    return lambda sample: processor(images=[sample.load_image()], return_tensors="pt")["pixel_values"]


# -- checkpoints --------------------------------------------------------------------------------------


def checkpoint_path(source: str) -> str:
    """The local folder to load for a non-tiny `source`: a registered model source's, or `source` itself
    when it is a folder. Anything else is an error: the library never downloads weights."""
    from pathlib import Path

    from ..catalog import get_catalog

    sources = get_catalog().entries("model_source")
    if source in sources:
        return str(sources[source].cls.path())
    if Path(source).expanduser().is_dir():
        return str(Path(source).expanduser())
    raise InputError(
        f"model {source!r} is neither a local checkpoint folder nor a registered model source "
        f"({', '.join(sorted(sources)) or 'none installed'}) nor tiny-<family>; tokcompress never downloads "
        "weights: download the checkpoint yourself and pass its folder"
    )


def _load_checkpoint(entry: ModelEntry, device: torch.device) -> LoadedModel:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = checkpoint_path(entry.source)
    try:
        processor = AutoProcessor.from_pretrained(path)
        model = AutoModelForImageTextToText.from_pretrained(
            path, dtype=_DTYPES[entry.dtype], attn_implementation=entry.attn_implementation
        )
    except (OSError, ValueError) as exc:
        raise InputError(f"model {entry.name!r}: cannot load {entry.source!r} as an image-text-to-text checkpoint: {exc}") from None
    model = model.to(device).eval()
    tokenizer = getattr(processor, "tokenizer", processor)
    has_template = bool(getattr(processor, "chat_template", None))
    image_token = getattr(processor, "image_token", None) or "<image>"

    def prepare(sample: Sample) -> dict[str, torch.Tensor]:
        if has_template:
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": sample.prompt}]}]
            text = processor.apply_chat_template(messages, add_generation_prompt=True)
        else:
            text = f"{image_token}\n{sample.prompt}"
        inputs = processor(images=[sample.load_image()], text=[text], return_tensors="pt")
        return {k: (v.to(device, dtype=model.dtype) if v.is_floating_point() else v.to(device))
                for k, v in inputs.items() if isinstance(v, torch.Tensor)}

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=True).strip()

    eos = model.generation_config.eos_token_id
    eos_ids = frozenset(eos if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else []))
    pad = model.generation_config.pad_token_id
    if pad is None:
        pad = getattr(tokenizer, "pad_token_id", None)
    return LoadedModel(entry.name, entry.source, model, device, prepare, decode, eos_ids, pad,
                       {"class": type(model).__name__, "tiny": False})

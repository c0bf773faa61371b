"""Tiny randomly initialised VLMs of every supported family, built from configs in code (no downloads).

Used by the tests, the demo, and the ablation/calibration tooling: they show exactness, cache
consistency, shapes, FLOPs and speed-ups, never accuracy (the weights are random).

    model, inputs = build_tiny_model("llava")            # one prompt: 4 text, 1 image, 6 text tokens
    inputs = make_inputs(model, [[3, Image(), 5], [2, Image(), 1, Image(), 4]])  # left-padded batch

A prompt is a list of segments: an ``int`` is that many random text tokens, an `Image` is one image
with the family's wrapper tokens (vision start/end, begin/end of image, tile separators).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..errors import InputError, unknown_name

__all__ = ["FAMILIES", "Image", "build_tiny_model", "make_inputs", "tiny_config", "family_of", "image_token_count",
           "TEXT_VOCAB", "PAD", "BOS", "EOS", "IMAGE_ID"]

FAMILIES = ("llava", "llava_next", "qwen2_vl", "qwen2_5_vl", "qwen3_vl", "internvl", "gemma3", "smolvlm")
"""Family names, in the order the tests and the demo list them."""

VOCAB = 1000
TEXT_VOCAB = 900
"""Random text tokens are drawn from ``[3, TEXT_VOCAB)``; ids 990-999 are image-related."""
PAD, BOS, EOS = 0, 1, 2
IMAGE_ID, VIDEO_ID, START_ID, END_ID, SEP_ID = 999, 998, 997, 996, 995
"""Image placeholder, Qwen video, image start (vision_start / boi / SmolVLM row marker), image end, separator."""

_CLASSES = {
    "llava": "LlavaForConditionalGeneration",
    "llava_next": "LlavaNextForConditionalGeneration",
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen3_vl": "Qwen3VLForConditionalGeneration",
    "internvl": "InternVLForConditionalGeneration",
    "gemma3": "Gemma3ForConditionalGeneration",
    "smolvlm": "SmolVLMForConditionalGeneration",
}


@dataclass(frozen=True)
class Image:
    """One image of a tiny prompt.

    height, width: pixels (LLaVA-NeXT: the original size that picks the anyres crops, default
    100x60; Qwen: the resized size, a multiple of patch x merge, default a 4x4 grid of merged
    patches). LLaVA, InternVL, Gemma3 and SmolVLM images have the vision tower's fixed size and
    ignore them. tiles: InternVL and SmolVLM tiles (the last of several is the thumbnail).
    """

    height: int | None = None
    width: int | None = None
    tiles: int = 1


def _text(hidden: int = 64, layers: int = 4, heads: int = 4, kv_heads: int = 2, intermediate: int | None = None) -> dict[str, Any]:
    return dict(
        hidden_size=hidden,
        intermediate_size=intermediate or 2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        vocab_size=VOCAB,
        max_position_embeddings=4096,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
        tie_word_embeddings=False,
    )


def tiny_config(family: str, *, text_layers: int = 4, text_hidden: int = 64, text_heads: int = 4,
                text_kv_heads: int = 2, text_intermediate: int | None = None, vision_layers: int = 2,
                image_size: int | None = None):
    """The config of a tiny model of `family` (see `FAMILIES`); every size is small enough for CPU tests."""
    import transformers as tf

    if family not in _CLASSES:
        raise InputError(unknown_name("model family", family, FAMILIES))
    text = _text(text_hidden, text_layers, text_heads, text_kv_heads, text_intermediate)
    vision = dict(num_hidden_layers=vision_layers, hidden_size=32, intermediate_size=64, num_attention_heads=4)
    if family in ("llava", "llava_next"):
        size = image_size or 56
        vcfg = tf.CLIPVisionConfig(image_size=size, patch_size=14, projection_dim=32, **vision)
        common = dict(vision_config=vcfg, text_config=tf.LlamaConfig(**text), image_token_index=IMAGE_ID,
                      image_seq_length=(size // 14) ** 2, vision_feature_layer=-2)
        if family == "llava":
            return tf.LlavaConfig(**common)
        pinpoints = [[size, size], [size, 2 * size], [2 * size, size], [2 * size, 2 * size]]
        return tf.LlavaNextConfig(image_grid_pinpoints=pinpoints, **common)
    if family in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"):
        head_dim = text_hidden // text_heads
        rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": _mrope_section(head_dim)}
        ids = dict(image_token_id=IMAGE_ID, video_token_id=VIDEO_ID, vision_start_token_id=START_ID,
                   vision_end_token_id=END_ID)
        if family == "qwen2_vl":
            vcfg = dict(depth=vision_layers, embed_dim=32, hidden_size=text_hidden, num_heads=4, mlp_ratio=2,
                        patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
            return tf.Qwen2VLConfig(text_config=dict(**text, rope_parameters=rope), vision_config=vcfg, **ids)
        if family == "qwen2_5_vl":
            vcfg = dict(depth=vision_layers, hidden_size=32, intermediate_size=64, num_heads=4, out_hidden_size=text_hidden,
                        patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                        fullatt_block_indexes=[vision_layers - 1])
            return tf.Qwen2_5_VLConfig(text_config=dict(**text, rope_parameters=rope), vision_config=vcfg, **ids)
        rope["mrope_interleaved"] = True
        vcfg = dict(depth=vision_layers, hidden_size=32, intermediate_size=64, num_heads=4, out_hidden_size=text_hidden,
                    patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=64,
                    deepstack_visual_indexes=list(range(min(2, vision_layers))))
        return tf.Qwen3VLConfig(text_config=dict(**text, head_dim=head_dim, rope_parameters=rope),
                                vision_config=vcfg, **ids)
    if family == "internvl":
        size = image_size or 56
        vcfg = dict(image_size=[size, size], patch_size=[14, 14], **vision)
        return tf.InternVLConfig(vision_config=vcfg, text_config=tf.Qwen2Config(**text).to_dict() | {"model_type": "qwen2"},
                                 image_token_id=IMAGE_ID, image_seq_length=((size // 14) // 2) ** 2)
    if family == "gemma3":
        size = image_size or 56
        tcfg = dict(text, head_dim=text_hidden // text_heads, query_pre_attn_scalar=text_hidden // text_heads,
                    sliding_window=8, layer_types=(["sliding_attention"] * 3 + ["full_attention"]) * (text_layers // 4)
                    + ["sliding_attention"] * (text_layers % 4))
        vcfg = dict(image_size=size, patch_size=7, **vision)
        return tf.Gemma3Config(text_config=tcfg, vision_config=vcfg, mm_tokens_per_image=16, image_token_index=IMAGE_ID,
                               boi_token_index=START_ID, eoi_token_index=END_ID)
    size = image_size or 56
    vcfg = dict(image_size=size, patch_size=7, **vision)
    return tf.SmolVLMConfig(vision_config=vcfg, text_config=tf.LlamaConfig(**text).to_dict() | {"model_type": "llama"},
                            image_token_id=IMAGE_ID, scale_factor=2, pad_token_id=PAD)


def _mrope_section(head_dim: int) -> list[int]:
    half = head_dim // 2
    t = half - 2 * (3 * half // 8)
    return [t, 3 * half // 8, 3 * half // 8]


def build_tiny_model(family: str, seed: int = 0, *, attn_implementation: str = "sdpa", prompt: Sequence[Any] = (4, "image", 6),
                     **config_kwargs: Any):
    """``(model, inputs)``: a tiny random `family` model in eval mode and one prompt for it.

    Weights are drawn from `seed` inside a forked RNG, so the caller's random state is untouched.
    ``config_kwargs`` go to `tiny_config` (text_layers, text_hidden, ...).
    """
    import transformers as tf

    config = tiny_config(family, **config_kwargs)
    cls = getattr(tf, _CLASSES[family])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls._from_config(config, attn_implementation=attn_implementation)
        for name, param in model.named_parameters():
            if name.endswith("mm_input_projection_weight"):  # Gemma3 initialises it to zeros: images would vanish
                torch.nn.init.normal_(param, std=0.5)
    model.eval()
    inputs = make_inputs(model, [[Image() if s == "image" else s for s in prompt]], seed=seed)
    return model, inputs


def family_of(model) -> str:
    """The tiny-model family name of a model instance (by class name)."""
    name = type(model).__name__
    for family, cls in _CLASSES.items():
        if cls == name:
            return family
    raise InputError(unknown_name("model class", name, _CLASSES.values()))


# -- inputs --------------------------------------------------------------------------------
def make_inputs(model, prompts: Sequence[Sequence[Any]], *, seed: int = 0, padding: str = "left",
                token_type_ids: bool = True) -> dict[str, torch.Tensor]:
    """Model inputs for `prompts` (each a list of text-token counts and `Image`s), left-padded with 0.

    Returns ``input_ids`` and ``attention_mask`` plus the family's image tensors (``pixel_values``,
    ``image_sizes``, ``image_grid_thw``, ``mm_token_type_ids``, ``token_type_ids``). Prompts without
    images give text-only inputs. `token_type_ids` (Gemma3) turns on bidirectional image attention.
    Prompt i draws its tokens and pixels from ``seed + i``, so a batch row equals the prompt alone
    built with ``seed + i``.
    """
    if padding not in ("left", "right"):
        raise InputError(f"padding must be 'left' or 'right', got {padding!r}")
    family = family_of(model)
    cfg = model.config
    gens = [torch.Generator().manual_seed(seed + i) for i in range(len(prompts))]
    rows: list[list[int]] = []
    images: list[list[Image]] = []
    for p, prompt in enumerate(prompts):
        ids: list[int] = []
        row_images = []
        for seg in prompt:
            if isinstance(seg, str) and seg == "image":
                seg = Image()
            if isinstance(seg, Image):
                row_images.append(seg)
                ids += _image_ids(family, cfg, seg)
            elif isinstance(seg, int) and not isinstance(seg, bool) and seg >= 0:
                ids += torch.randint(3, TEXT_VOCAB, (seg,), generator=gens[p]).tolist()
            else:
                raise InputError(f"prompt {p}: segment {seg!r} is neither a text-token count (int >= 0) nor an Image")
        if not ids:
            raise InputError(f"prompt {p} is empty")
        rows.append(ids)
        images.append(row_images)
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), PAD, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, ids in enumerate(rows):
        sl = slice(width - len(ids), width) if padding == "left" else slice(0, len(ids))
        input_ids[b, sl] = torch.tensor(ids)
        attention_mask[b, sl] = 1
    out: dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention_mask}
    flat = [im for row in images for im in row]
    if flat:
        out.update(_pixels(family, cfg, images, gens))
    if family in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"):
        out["mm_token_type_ids"] = (input_ids == IMAGE_ID).int()
    if family == "gemma3" and token_type_ids and flat:
        out["token_type_ids"] = (input_ids == IMAGE_ID).long()
    return out


def image_token_count(family: str, cfg, image: Image) -> int:
    """Number of image-placeholder tokens one image takes in `family`."""
    return _image_ids(family, cfg, image).count(IMAGE_ID)


def _qwen_grid(family: str, cfg, image: Image) -> tuple[int, int]:
    unit = cfg.vision_config.patch_size * cfg.vision_config.spatial_merge_size
    h, w = image.height or 4 * unit, image.width or 4 * unit
    if h % unit or w % unit:
        raise InputError(f"{family} Image size must be a multiple of {unit} pixels, got {h}x{w}")
    return h // cfg.vision_config.patch_size, w // cfg.vision_config.patch_size


def _image_ids(family: str, cfg, image: Image) -> list[int]:
    if family == "llava":
        return [IMAGE_ID] * cfg.image_seq_length
    if family == "llava_next":
        from .layout import llava_next_image_layout

        size = (image.height or 100, image.width or 60)
        return [IMAGE_ID] * llava_next_image_layout(cfg, size).num_tokens
    if family in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"):
        gh, gw = _qwen_grid(family, cfg, image)
        m = cfg.vision_config.spatial_merge_size
        return [START_ID] + [IMAGE_ID] * (gh * gw // (m * m)) + [END_ID]
    if family == "internvl":
        return [START_ID] + [IMAGE_ID] * (cfg.image_seq_length * image.tiles) + [END_ID]
    if family == "gemma3":
        return [START_ID] + [IMAGE_ID] * cfg.mm_tokens_per_image + [END_ID]
    # smolvlm: every tile is its own run, separated like the real processor's <fake_token_around_image><row_i_col_j>
    per_tile = (cfg.vision_config.image_size // cfg.vision_config.patch_size) ** 2 // cfg.scale_factor**2
    ids: list[int] = []
    for _ in range(image.tiles):
        ids += [SEP_ID, START_ID] + [IMAGE_ID] * per_tile
    return ids + [SEP_ID]


def _pixels(family: str, cfg, images: list[list[Image]], gens: list[torch.Generator]) -> dict[str, torch.Tensor]:
    """Random pixels per image, each drawn from its prompt's generator (padding slots are zeros)."""
    flat = [(b, im) for b, row in enumerate(images) for im in row]
    v = cfg.vision_config
    if family in ("llava", "internvl", "gemma3"):
        s = v.image_size[0] if isinstance(v.image_size, (list, tuple)) else v.image_size
        tiles = [torch.randn(im.tiles if family == "internvl" else 1, 3, s, s, generator=gens[b]) for b, im in flat]
        return {"pixel_values": torch.cat(tiles)}
    if family == "llava_next":
        from transformers.models.llava_next.modeling_llava_next import image_size_to_num_patches

        s = v.image_size
        sizes = [(im.height or 100, im.width or 60) for _, im in flat]
        counts = [image_size_to_num_patches(sz, cfg.image_grid_pinpoints, s) for sz in sizes]
        pv = torch.zeros(len(flat), max(counts), 3, s, s)
        for i, ((b, _), c) in enumerate(zip(flat, counts)):
            pv[i, :c] = torch.randn(c, 3, s, s, generator=gens[b])
        return {"pixel_values": pv, "image_sizes": torch.tensor(sizes)}
    if family in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"):
        grids = [(1, *_qwen_grid(family, cfg, im)) for _, im in flat]
        dim = v.in_channels * v.temporal_patch_size * v.patch_size**2
        patches = [torch.randn(t * h * w, dim, generator=gens[b]) for (b, _), (t, h, w) in zip(flat, grids)]
        return {"pixel_values": torch.cat(patches), "image_grid_thw": torch.tensor(grids)}
    s = v.image_size
    per_row = [sum(im.tiles for im in row) for row in images]
    pv = torch.zeros(len(images), max(max(per_row), 1), 3, s, s)
    for b, n in enumerate(per_row):
        pv[b, :n] = torch.randn(n, 3, s, s, generator=gens[b])
    return {"pixel_values": pv}

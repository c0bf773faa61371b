"""Grid layouts of each image's visual tokens, from what the model is given (sizes, grids, tiles, crops).

Each function describes one image as `tokcompress.Layout` segments in the order the model lays its
features out; `row_layouts` joins the images of each prompt row. Newline tokens (LLaVA-NeXT) and
thumbnails / global images (InternVL, SmolVLM) are marked so spatial stages can treat them apart.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..errors import InputError
from ..layout import Grid, Layout, OffGrid

__all__ = [
    "square_layout",
    "llava_next_image_layout",
    "qwen_image_layout",
    "tiles_layout",
    "visual_runs",
    "row_layouts",
]


def square_layout(num_tokens: int, kind: str = "image") -> Layout:
    """A square grid, or one off-grid CLS token followed by a square grid (``vision_feature_select_strategy: full``)."""
    side = math.isqrt(num_tokens)
    if side * side == num_tokens:
        return Layout((Grid(side, side, kind),))
    side = math.isqrt(num_tokens - 1)
    if side * side == num_tokens - 1:
        return Layout((OffGrid(1, "cls"), Grid(side, side, kind)))
    raise InputError(f"an image of {num_tokens} visual tokens is not a square grid (with or without a CLS token)")


def llava_next_image_layout(config, image_size: Sequence[int]) -> Layout:
    """LLaVA-NeXT anyres: base image grid, then the unpadded crop grid with one newline token per row.

    Mirrors ``LlavaNextModel.pack_image_features`` (5.23): the crops form an ``(nh*s) x (nw*s)``
    grid cropped back to the image's aspect ratio by ``unpad_image``; a single-crop image is the
    base grid plus one newline token.
    """
    from transformers.models.llava_next.modeling_llava_next import get_anyres_image_grid_shape, unpad_image

    vcfg = config.vision_config
    side = vcfg.image_size // vcfg.patch_size
    size = [int(v) for v in (image_size.tolist() if isinstance(image_size, torch.Tensor) else image_size)]
    nh, nw = get_anyres_image_grid_shape(size, config.image_grid_pinpoints, vcfg.image_size)
    from transformers.models.llava_next.modeling_llava_next import image_size_to_num_patches

    if image_size_to_num_patches(size, config.image_grid_pinpoints, vcfg.image_size) <= 1:
        return Layout((Grid(side, side, "base"), OffGrid(1, "newline")))
    h, w = unpad_image(torch.empty(1, nh * side, nw * side), size).shape[1:]
    return Layout((Grid(side, side, "base"), Grid(int(h), int(w), "crop", newline=True)))


def qwen_image_layout(grid_thw: Sequence[int], merge: int) -> Layout:
    """Qwen-VL: ``t`` frames of ``(h/merge) x (w/merge)`` merged patches (one grid per frame)."""
    t, h, w = (int(v) for v in grid_thw)
    if h % merge or w % merge:
        raise InputError(f"image_grid_thw {list(grid_thw)} is not divisible by spatial_merge_size {merge}")
    kind = "image" if t == 1 else "frame"
    return Layout(tuple(Grid(h // merge, w // merge, kind) for _ in range(t)))


def tiles_layout(num_tiles: int, tokens_per_tile: int, thumbnail: bool = True) -> Layout:
    """Square tiles in order; with `thumbnail`, the last of several tiles is the downscaled whole image."""
    side = math.isqrt(tokens_per_tile)
    if side * side != tokens_per_tile:
        raise InputError(f"a tile of {tokens_per_tile} tokens is not a square grid")
    kinds = ["tile"] * num_tiles
    if thumbnail and num_tiles > 1:
        kinds[-1] = "thumbnail"
    return Layout(tuple(Grid(side, side, k) for k in kinds))


def visual_runs(visual: torch.Tensor) -> list[list[int]]:
    """Lengths of the runs of consecutive True values in each row of a [B, N] bool mask."""
    out = []
    for row in visual.cpu():
        padded = torch.cat([torch.zeros(1, dtype=torch.bool), row, torch.zeros(1, dtype=torch.bool)]).int()
        edges = torch.diff(padded)
        starts, ends = (edges == 1).nonzero().flatten(), (edges == -1).nonzero().flatten()
        out.append((ends - starts).tolist())
    return out


def row_layouts(counts: Sequence[int], images: Sequence[Layout]) -> list[Layout | None]:
    """Join consecutive image layouts into one `Layout` per row, consuming `images` in row order.

    `counts` is each row's number of visual tokens; the images must add up to it exactly, since the
    model scatters image features in that same order. Rows without visual tokens get None.
    """
    out: list[Layout | None] = []
    it = iter(enumerate(images))
    for b, n in enumerate(counts):
        segments: list = []
        total = 0
        while total < n:
            try:
                i, lay = next(it)
            except StopIteration:
                raise InputError(
                    f"row {b} has {n} visual tokens but the images describe only {total}; "
                    "the image inputs do not match the image tokens"
                ) from None
            segments += lay.segments
            total += lay.num_tokens
        if total != n:
            raise InputError(f"row {b} has {n} visual tokens but its images describe {total}")
        out.append(Layout(tuple(segments)) if segments else None)
    if next(it, None) is not None:
        raise InputError(f"{len(images)} images given but the prompts' image tokens hold fewer")
    return out

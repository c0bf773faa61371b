"""Debiaser `position_prior`: divide (or subtract) the attention a position gets regardless of content.

D2Pruner step 2. The attention of the last prompt token is biased by position (LLaVA favours the
last grid rows, InternVL/Qwen the periphery), so high raw attention partly measures *where* a
token is. A calibration profile holds the mean attention per position over many images; dividing
by it leaves what the content adds. The profile is placed on each row's layout grid by grid:
exact when sizes match, bilinearly resampled otherwise, once per tile/crop/frame.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from tokcompress.component import Params
from tokcompress.debiasers.base import Debiaser
from tokcompress.errors import InputError
from tokcompress.layout import Grid, Layout
from tokcompress.tokens import VisualTokens

from .profiles import OFFGRID_KEY, Profile, ProfileError, load_profile

__all__ = ["PositionPriorDebiaser", "PositionPriorParams"]

_CACHE_SIZE = 256  # placed priors kept per debiaser (oldest dropped first)


class PositionPriorParams(Params):
    profile: str = "llava-1.5-analytic"
    """Registered profile name or path to ``NAME.safetensors``. Evidence T (the prior is a
    calibration mean; 1000 COCO train2014 images, seed 42, in the InternVL reproduction). The
    shipped profiles are *analytic* shapes, not measurements; calibrate for real use."""
    mode: Literal["ratio", "subtract"] = "ratio"
    """``ratio``: ``A / (A_bias + eps)`` (evidence T). ``subtract``: ``A - A_bias`` (evidence U,
    offered by the method reference as an option). Leave the stage out for no debiasing."""
    eps: float = Field(1e-7, gt=0, le=1)
    """Added to the prior in ``ratio`` mode so a zero prior cannot divide by zero; at most 1 (the scale of
    attention). Evidence T (1e-7)."""
    subtract_normalize: bool = True
    """``subtract`` mode only: scale both vectors to unit sum over the row's valid tokens first, so
    the two are on one scale whatever the grid size. Evidence U (the reference says "optionally");
    ``ratio`` rankings do not depend on scale, so it is not applied there."""
    kind_map: dict[str, str] = Field(default_factory=dict)
    """Layout kind -> profile kind, e.g. ``{crop: image}`` to reuse a single-image prior on
    LLaVA-NeXT crops. Kinds not listed use their own name. Evidence U (ours)."""
    offgrid: Literal["mean", "error"] = "mean"
    """Off-grid tokens (newlines, separators) the profile has no 1-D entry for: ``mean`` gives them
    the mean prior of the row's grid positions (neither favoured nor penalised), ``error`` refuses.
    Evidence U (ours)."""


class PositionPriorDebiaser(Debiaser):
    """Corrects scores by a positional-bias profile placed on each row's layout.

    Without a layout, a row is accepted only when the profile has one grid map whose size equals
    the row's token count (taken as that grid, row-major); anything else is an `InputError`.
    """

    name = "position_prior"
    Params = PositionPriorParams

    def __init__(self, params: PositionPriorParams | None = None) -> None:
        super().__init__(params)
        try:  # at build time, so a wrong name fails before any tensor is seen
            self.profile: Profile = load_profile(self.params.profile)
        except ProfileError as exc:
            raise ProfileError(f"debiaser 'position_prior', field 'profile': {exc}") from None
        self._bias_cache: dict[object, torch.Tensor] = {}

    # -- placing the prior --------------------------------------------------------------
    def bias_for_layout(self, layout: Layout) -> torch.Tensor:
        """``[layout.num_tokens]`` fp32 prior on CPU, grid by grid in the layout's token order."""
        if layout not in self._bias_cache:
            self._remember(layout, self._place(layout))
        return self._bias_cache[layout]

    def _remember(self, key: object, bias: torch.Tensor) -> None:
        if len(self._bias_cache) >= _CACHE_SIZE:  # dynamic-resolution models meet many layouts
            self._bias_cache.pop(next(iter(self._bias_cache)))
        self._bias_cache[key] = bias

    def _kind(self, kind: str) -> str:
        return self.params.kind_map.get(kind, kind)

    def _place(self, layout: Layout) -> torch.Tensor:
        grid_maps = []
        for seg in layout.grids:
            try:
                grid_maps.append(self.profile.map_for(seg, self._kind(seg.kind)))
            except ProfileError as exc:
                raise InputError(
                    f"debiaser 'position_prior' on layout {layout.describe()}: {exc} "
                    f"(kind_map: {{{seg.kind}: <profile kind>}})"
                ) from None
        if not grid_maps:
            raise InputError(
                f"debiaser 'position_prior': layout {layout.describe()} has no grid, so a positional "
                f"prior ({self.profile.describe()}) has nothing to attach to; leave the debiaser out"
            )
        mean = torch.cat([m.flatten() for m in grid_maps]).mean()
        parts, maps = [], iter(grid_maps)
        for seg in layout.segments:
            if isinstance(seg, Grid):
                m = next(maps)
                if seg.newline:
                    nl = self._offgrid(OFFGRID_KEY, seg.rows, mean, layout)
                    m = torch.cat([m, nl.unsqueeze(1)], dim=1)
                parts.append(m.flatten())
            else:
                parts.append(self._offgrid(self._kind(seg.kind), seg.count, mean, layout))
        return torch.cat(parts)

    def _offgrid(self, kind: str, count: int, mean: torch.Tensor, layout: Layout) -> torch.Tensor:
        vec = self.profile.vector_for(kind, count)
        if vec is not None:
            return vec
        if self.params.offgrid == "mean":
            return mean.expand(count).clone()
        raise InputError(
            f"debiaser 'position_prior' (offgrid: error): profile {self.profile.describe()} has no 1-D "
            f"entry {kind!r} for the {count} off-grid tokens of layout {layout.describe()}; "
            f"use offgrid: mean or a profile with that entry"
        )

    def _bias_for_count(self, n: int) -> torch.Tensor:
        key = ("count", n)
        if key not in self._bias_cache:
            sized = [k for k in self.profile.grid_kinds if self.profile.maps[k].numel() == n]
            if len(self.profile.grid_kinds) != 1 or not sized:
                raise InputError(
                    f"debiaser 'position_prior' needs VisualTokens.layout to place profile "
                    f"{self.profile.describe()} on a row of {n} tokens: without a layout only a single-map "
                    f"profile of exactly {n} positions applies; pass layout=Layout.grid(rows, cols)"
                )
            self._remember(key, self.profile.maps[sized[0]].float().flatten())
        return self._bias_cache[key]

    def bias(self, tokens: VisualTokens) -> torch.Tensor:
        """``[B, N]`` fp32 prior on the tokens' device; 1 at padding positions."""
        layouts = tokens.layouts()
        if layouts is not None and tokens.mask is None:  # no padding: each row is its layout's cached prior
            return torch.stack([self.bias_for_layout(lay) for lay in layouts]).to(tokens.device)
        valid = tokens.valid_mask().cpu()
        out = torch.ones(valid.shape, dtype=torch.float32)
        for b in range(tokens.batch_size):
            n = int(valid[b].sum())
            out[b, valid[b]] = self.bias_for_layout(layouts[b]) if layouts else self._bias_for_count(n)
        return out.to(tokens.device)

    # -- the correction -----------------------------------------------------------------
    def debias(self, scores: torch.Tensor, tokens: VisualTokens) -> torch.Tensor:
        valid = tokens.mask  # None: every token is valid (no masking to do)
        s = scores.float()
        prior = self.bias(tokens)
        if self.params.mode == "ratio":
            low = (s if valid is None else s.masked_fill(~valid, 0)).min().item()
            if low < 0:
                raise InputError(
                    f"debiaser 'position_prior' (mode: ratio) expects non-negative scores such as "
                    f"attention, got a minimum of {low:.4g}; use mode: subtract for signed scores"
                )
            return s / (prior + self.params.eps)
        if self.params.subtract_normalize:
            s, prior = _unit_sum(s, valid), _unit_sum(prior, valid)
        out = s - prior
        return out if valid is None else out.masked_fill(~valid, 0)


def _unit_sum(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    if valid is not None:
        x = x.masked_fill(~valid, 0)
    return x / x.sum(dim=1, keepdim=True).abs().clamp_min(torch.finfo(torch.float32).tiny)

"""`VisualTokens`: the batch a pruner sees, checked once at construction.

Every tensor is batch-first. Optional probes (attention, keys, text-side tensors) are present only
when the placement can supply them; stages declare which they need and the pipeline refuses a
call that lacks one with a message naming the stage and the missing field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Sequence

import torch

from .errors import InputError
from .layout import Layout

__all__ = ["VisualTokens"]

# Optional per-visual-token fields: name -> (trailing dims after [B, N], description).
TOKEN_FIELDS = {
    "attention": (0, "attention received from the query token, head-averaged [B, N]"),
    "keys": (1, "key vectors of the visual tokens [B, N, Dk]"),
    "image_embeds": (1, "visual tokens in a joint image-text space, e.g. CLIP [B, N, C]"),
}
# Optional text-side fields: name -> (trailing dims after [B, T], description).
TEXT_FIELDS = {
    "text_keys": (1, "key vectors of the text tokens after the image [B, T, Dk]"),
    "text_embeds": (1, "text embeddings in the joint image-text space [B, T, C]"),
    "text_features": (1, "text tokens in the space of `features`, e.g. normed hidden states [B, T, D]"),
}


@dataclass(frozen=True, slots=True)
class VisualTokens:
    """Visual tokens of a batch and the probes stages may use.

    features:     [B, N, D] float. Hidden states (in-LLM), projector outputs (pre-LLM) or vision features.
    attention:    [B, N] attention each token receives from the query (last prompt token, or CLS).
    keys:         [B, N, Dk] key vectors.
    image_embeds: [B, N, C] image tokens in a joint image-text space (text-conditioned scorers).
    text_keys:    [B, T, Dk] keys of text tokens; text_embeds: [B, T, C] text embeddings.
    text_features: [B, T, D] text tokens in the same space as `features` (DART's text pivots).
    text_mask:    [B, T] bool, True where a text token is real (ragged text).
    mask:         [B, N] bool, True where a visual token is real (ragged batches pad at the end or anywhere).
    layout:       one `Layout` for every row, or one per row; its token count must equal the row's
                  valid-token count. None means "no spatial information".
    check_values: False skips the NaN/inf scan of every field (shapes, dtypes, devices, masks and
                  layouts are always checked). The scan reads every value once; the Hugging Face
                  placements skip it for hidden states the model itself just produced, on every
                  prefill (a NaN there reaches the model's output anyway, and NaN attention still
                  fails the pipeline's check of the scores).
    """

    features: torch.Tensor
    attention: torch.Tensor | None = None
    keys: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    text_keys: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    text_mask: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    layout: Layout | Sequence[Layout] | None = None
    text_features: torch.Tensor | None = None
    check_values: bool = field(default=True, repr=False, compare=False)
    _layouts: tuple[Layout, ...] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Construction runs on every prefill, right after the model's own work has evicted this code from
        # the caches, where each Python step costs several times its warm time: slots spare building an
        # instance dict, and only the fields given are checked.
        object.__setattr__(self, "_layouts", self._validate())

    def _validate(self) -> tuple[Layout, ...] | None:
        """Check every given field; return the layout of each row."""
        f = self.features
        if not isinstance(f, torch.Tensor):
            raise InputError(f"VisualTokens.features must be a torch.Tensor, got {type(f).__name__}")
        shape = f.shape
        if len(shape) != 3:
            raise InputError(f"VisualTokens.features must be [B, N, D], got shape {tuple(shape)}")
        if not f.is_floating_point():
            raise InputError(f"VisualTokens.features must be floating point, got {f.dtype}")
        B, N, _ = shape
        if B == 0 or N == 0:
            raise InputError(f"VisualTokens.features must have B >= 1 and N >= 1, got shape {tuple(shape)}")
        if self.mask is not None:
            self._check_mask("mask", (B, N))
            if not bool(self.mask.any(dim=1).all()):
                empty = (~self.mask.any(dim=1)).nonzero().flatten().tolist()
                raise InputError(f"VisualTokens.mask: rows {empty} have no valid token")
        for name, (extra, desc) in TOKEN_FIELDS.items():
            if getattr(self, name) is not None:
                self._check(name, (B, N), extra, desc)
        T = None
        for name, (extra, desc) in TEXT_FIELDS.items():
            if (t := getattr(self, name)) is not None:
                if T is None and t.dim() >= 2:  # the first text field fixes T; the others must agree
                    T = t.shape[1]
                self._check(name, (B, T), extra, desc)
        if self.text_mask is not None:
            if T is None:
                raise InputError("VisualTokens.text_mask given without any text field (text_keys, text_embeds, text_features)")
            self._check_mask("text_mask", (B, T))
        if self.check_values:
            self._scan_finite("features", f)
        return self._resolve_layouts(B, N)

    # -- validation helpers -------------------------------------------------------------
    def _check(self, name: str, lead: tuple[int, int], extra: int, desc: str) -> None:
        t = getattr(self, name)
        if not isinstance(t, torch.Tensor):
            raise InputError(f"VisualTokens.{name} must be a torch.Tensor, got {type(t).__name__}")
        shape = t.shape
        if len(shape) != 2 + extra or shape[:2] != lead:
            want = f"[{lead[0]}, {lead[1]}{', ...' if extra else ''}]"
            raise InputError(f"VisualTokens.{name} has shape {tuple(shape)}; expected {want} ({desc})")
        if not t.is_floating_point():
            raise InputError(f"VisualTokens.{name} must be floating point, got {t.dtype}")
        if t.device != self.features.device:
            raise InputError(
                f"VisualTokens.{name} is on {t.device} but features are on {self.features.device}"
            )
        if self.check_values:
            self._scan_finite(name, t)

    def _check_mask(self, name: str, shape: tuple[int, int]) -> None:
        m = getattr(self, name)
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool or tuple(m.shape) != shape:
            got = f"{tuple(m.shape)} {m.dtype}" if isinstance(m, torch.Tensor) else type(m).__name__
            raise InputError(f"VisualTokens.{name} must be a bool tensor of shape {list(shape)}, got {got}")
        if m.device != self.features.device:
            raise InputError(f"VisualTokens.{name} is on {m.device} but features are on {self.features.device}")

    def _scan_finite(self, name: str, t: torch.Tensor) -> None:
        """NaN/inf at valid tokens is an error.

        A finite sum proves every summed value finite, so one reduction per token (a single read, no
        temporary of the tensor's size) clears a clean batch. Only tokens whose sum is not finite (a
        NaN/inf, or finite values that overflow) are scanned element by element, to name the first bad
        value or find there is none.
        """
        suspect = ~torch.isfinite(t.sum(dim=-1) if t.dim() == 3 else t)  # [B, N] or [B, T]
        if self.mask is not None and (name == "features" or name in TOKEN_FIELDS):
            suspect &= self.mask
        if not bool(suspect.any()):
            return
        where = suspect.nonzero()  # row-major, so the first bad token found is the first overall
        bad = ~torch.isfinite(t[where[:, 0], where[:, 1]]).view(len(where), -1)
        found = bad.any(dim=1)
        if bool(found.any()):
            k = int(found.to(torch.uint8).argmax())
            index = where[k].tolist() + ([int(bad[k].to(torch.uint8).argmax())] if t.dim() == 3 else [])
            raise InputError(f"VisualTokens.{name} has non-finite values (NaN/inf), first at index {index}")

    def _resolve_layouts(self, B: int, N: int) -> tuple[Layout, ...] | None:
        if self.layout is None:
            return None
        if isinstance(self.layout, Layout) and self.mask is None and self.layout.num_tokens == N:
            return (self.layout,) * B  # the common case: one layout that fits every row, nothing to loop over
        layouts = (self.layout,) * B if isinstance(self.layout, Layout) else tuple(self.layout)
        if len(layouts) != B:
            raise InputError(f"VisualTokens.layout has {len(layouts)} entries for a batch of {B}")
        counts = self.valid_counts().tolist() if self.mask is not None else [N] * B
        for b, (lay, n) in enumerate(zip(layouts, counts)):
            if not isinstance(lay, Layout):
                raise InputError(f"VisualTokens.layout[{b}] must be a Layout, got {type(lay).__name__}")
            if lay.num_tokens != n:
                raise InputError(
                    f"VisualTokens.layout[{b}] ({lay.describe()}) describes {lay.num_tokens} tokens "
                    f"but row {b} has {n} valid tokens"
                )
        return layouts

    # -- accessors ----------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.features.shape[0]

    @property
    def num_tokens(self) -> int:
        return self.features.shape[1]

    @property
    def device(self) -> torch.device:
        return self.features.device

    def valid_mask(self) -> torch.Tensor:
        """[B, N] bool, all True when no mask was given."""
        if self.mask is None:
            return torch.ones(self.features.shape[:2], dtype=torch.bool, device=self.device)
        return self.mask

    def valid_counts(self) -> torch.Tensor:
        return self.valid_mask().sum(dim=1)

    def valid_sizes(self) -> list[int]:
        """Valid tokens per row as ints (no device round trip when there is no mask)."""
        if self.mask is None:
            return [self.num_tokens] * self.batch_size
        return self.valid_counts().tolist()

    def layouts(self) -> tuple[Layout, ...] | None:
        """One `Layout` per row (valid tokens only), or None."""
        return self._layouts

    def coords(self) -> torch.Tensor | None:
        """LongTensor [B, N, 3] of (segment, row, col) per token; padding rows are all OFF_GRID (-1)."""
        if self._layouts is None:
            return None
        out = torch.full((self.batch_size, self.num_tokens, 3), -1, dtype=torch.long)
        valid = self.valid_mask().cpu()
        for b, lay in enumerate(self._layouts):
            out[b, valid[b]] = lay.coords()
        return out.to(self.device)

    def present(self) -> frozenset[str]:
        """Names of the fields this batch carries."""
        return frozenset(n for n in DATA_FIELDS if getattr(self, n) is not None)

    def rows(self, rows: Sequence[int]) -> "VisualTokens":
        """The batch of rows `rows` only (every field, masks and layouts included): views of consecutive
        rows, copies of others. The values were checked with this batch and are not scanned again."""
        rows = list(rows)
        start = rows[0] if rows else 0
        consecutive = rows == list(range(start, start + len(rows)))
        pick = slice(start, start + len(rows)) if consecutive else torch.tensor(rows, dtype=torch.long, device=self.device)
        out = {n: t[pick] for n in DATA_FIELDS if isinstance(t := getattr(self, n), torch.Tensor)}
        if self._layouts is not None:
            out["layout"] = [self._layouts[r] for r in rows]
        return VisualTokens(**out, check_values=False)


DATA_FIELDS = tuple(f.name for f in fields(VisualTokens) if f.init and f.name != "check_values")
"""The fields that carry data (`present` reports those given)."""

"""Instruction relevance of each visual token: cosine to the text in a joint image-text space (CDPruner).

CDPruner's reference code scores ``r_i = mean_m(-cos(E_img_i, E_txt_m))`` (note the minus sign: the
least text-like tokens score highest) and min-max normalises ``r`` over the whole tensor:
``(r - min + 1e-6) / (max - min)``. Both are parameters here, with the reference as default.

The joint space is CLIP's in the reference (``image_embeds`` / ``text_embeds``, which a VLM forward does
not compute). ``image="features", text="text_features"`` scores in the LLM's input space instead
(projector outputs against the question's input embeddings), for models trained to align the two, such
as the project's grounding model (docs/grounding-model.md).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from ..component import Params
from ..errors import InputError
from ..tokens import VisualTokens
from .base import Scorer


class TextRelevanceParams(Params):
    image: Literal["image_embeds", "features"] = "image_embeds"
    """`VisualTokens` field of the visual side: CLIP image embeddings (CDPruner) or ``features``."""
    text: Literal["text_embeds", "text_features"] = "text_embeds"
    """Field of the text side: CLIP text embeddings (CDPruner) or ``text_features`` (the space of ``features``)."""
    negate: bool = True
    """Score the *negated* mean cosine, as CDPruner's code does; False scores the mean cosine itself."""
    normalize: Literal["minmax", "none"] = "minmax"
    """``minmax``: ``(r - min + eps) / (max - min)`` (CDPruner); ``none``: raw mean cosine."""
    scope: Literal["row", "batch"] = "row"
    """Min and max over each row's valid tokens (``row``: every token of one sample, all crops of an
    image together), or over the whole batch (``batch``: CDPruner's ``relevance.min()`` when several
    samples are stacked in one call). Rows never influence each other under ``row``."""
    eps: float = Field(1e-6, ge=0, le=1)
    """Added to the numerator of the min-max normalisation (CDPruner: 1e-6), so no token scores 0; at most 1."""


class TextRelevanceScorer(Scorer):
    """Mean cosine of each visual token (`image`) to the text (`text`; valid text only), in fp32.

    A row whose relevance is constant (max == min) scores 1 everywhere instead of dividing by zero.
    """

    name = "text_relevance"
    Params = TextRelevanceParams

    def requires(self) -> frozenset[str]:
        return frozenset({self.params.image, self.params.text} - {"features"})

    def score(self, tokens: VisualTokens) -> torch.Tensor:
        img, txt = getattr(tokens, self.params.image), getattr(tokens, self.params.text)
        if img.shape[-1] != txt.shape[-1]:
            raise InputError(
                f"scorer 'text_relevance': VisualTokens.{self.params.image} has width {img.shape[-1]} but "
                f"{self.params.text} has width {txt.shape[-1]}; both must live in the same joint space"
            )
        cos = torch.bmm(F.normalize(img.float(), dim=-1), F.normalize(txt.float(), dim=-1).transpose(1, 2))
        if self.params.negate:
            cos = -cos
        if tokens.text_mask is None:
            r = cos.mean(dim=-1)
        else:
            tm = tokens.text_mask
            empty = (~tm.any(dim=1)).nonzero().flatten().tolist()
            if empty:
                raise InputError(f"scorer 'text_relevance': VisualTokens.text_mask rows {empty} have no text token")
            r = (cos * tm[:, None, :]).sum(dim=-1) / tm.sum(dim=1, keepdim=True)
        if self.params.normalize == "minmax":
            r = self._minmax(r, tokens.valid_mask())
        return r

    def _minmax(self, r: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        dims = (0, 1) if self.params.scope == "batch" else (1,)
        lo = r.masked_fill(~valid, float("inf")).amin(dim=dims, keepdim=True)
        hi = r.masked_fill(~valid, float("-inf")).amax(dim=dims, keepdim=True)
        span = hi - lo
        out = (r - lo + self.params.eps) / torch.where(span > 0, span, torch.ones_like(span))
        out = torch.where(span > 0, out, torch.ones_like(out))
        return out.masked_fill(~valid, 0.0)

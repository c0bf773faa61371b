"""`attach`: run a tokcompress pruner inside a Hugging Face VLM, per model instance, during `generate`.

    with tokcompress.attach(model, "fastv", keep=64) as handle:
        out = model.generate(**inputs, max_new_tokens=32)
    print(handle.stats)

Everything is done with forward hooks on this model instance (plus, when a stage needs attention
or keys, the text model switched to a probing attention function registered under a unique name),
and all of it is undone by `PruningHandle.remove` (on leaving the ``with`` block, also on errors).

Placements (from the spec): ``pre_llm`` prunes the decoder's input embeddings; ``layer`` lets
layers < K see every token and prunes the input of layer K, so layers >= K (and their KV cache)
hold only the kept tokens; ``vision`` (LLaVA) selects and merges vision-tower features before the
projector (VisionZip) and drops the rest before the decoder. Kept tokens keep their original RoPE
positions unless ``renumber_positions=True``.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import InputError
from ..pruner import Pruner, build_pruner, resolve_budget
from ..spec import PrunerSpec, load_spec
from .adapters import CallInputs, ModelAdapter, find_adapter
from .kept import Kept, build_kept, take
from .masks import layer_mask, lm_mask
from .probes import AttentionProbe
from .selection import ModelTensors, select_rows
from .stats import PruneStats, make_stats

__all__ = ["attach", "PruningHandle", "PLACEMENT_PROVIDES"]

PLACEMENT_PROVIDES: dict[str, frozenset[str]] = {
    "pre_llm": frozenset({"features", "layout", "mask", "text_features", "text_mask"}),
    "layer": frozenset({"features", "attention", "keys", "text_keys", "text_features", "text_mask", "layout", "mask"}),
    "vision": frozenset({"features", "attention", "keys", "layout", "mask"}),
}
"""VisualTokens fields each placement can fill from the model."""

_IMAGE_INPUTS = ("pixel_values", "mm_encoder_outputs", "pixel_values_videos")
_attached: "weakref.WeakKeyDictionary[nn.Module, PruningHandle]" = weakref.WeakKeyDictionary()


def attach(model: nn.Module, pruner: "str | Path | Mapping[str, Any] | PrunerSpec | Pruner", *, keep: int | None = None,
           ratio: float | None = None, renumber_positions: bool | None = None,
           features: str | None = None) -> "PruningHandle":
    """Prune the visual tokens of `model` (a supported ``...ForConditionalGeneration``) with `pruner`.

    pruner: preset name, spec file path, spec mapping, `PrunerSpec` or a built `Pruner`; its spec's
    ``placement`` and ``layer`` say where. keep / ratio: visual tokens kept per sample (per image for
    the vision placement), exactly one of them. renumber_positions: give kept tokens contiguous RoPE
    positions (decode positions shift with them) instead of their original ones; None takes the
    spec's ``positions`` (default ``original``, FastV's convention).
    features: what `VisualTokens.features` / ``text_features`` hold: ``hidden`` (the hidden states
    entering the pruning layer, or the projector outputs pre-LLM; D2Pruner, DivPrune) or ``normed``
    (the same through the decoder's final norm: DART's "final-normed hidden states"); None takes
    the spec's ``features``.
    Returns a `PruningHandle`; use it as a context manager or call ``.remove()``.
    """
    if model in _attached:
        raise InputError(f"{type(model).__name__} already has a tokcompress pruner attached; remove it first")
    resolve_budget(1, keep, ratio)  # validates keep / ratio now rather than at the first call
    built = pruner if isinstance(pruner, Pruner) else build_pruner(load_spec(pruner))
    features = built.spec.features if features is None else features
    if features not in ("hidden", "normed"):
        raise InputError(f"features must be 'hidden' or 'normed', got {features!r}")
    if renumber_positions is None:
        renumber_positions = built.spec.positions == "contiguous"
    adapter = find_adapter(model)
    _check_transformers_version(adapter)
    handle = PruningHandle(model, adapter, built, keep, ratio, bool(renumber_positions), features)
    _attached[model] = handle
    return handle


SUPPORTED_TRANSFORMERS = ">=5.14,<5.26"
"""transformers releases the hooks are tested on: `make test` runs tests/hf at both ends (5.14.x and 5.25.x).
5.14 is the first with per-layer mask sizing (``create_causal_mask(layer_idx=...)``), which `masks` relies on."""


def _check_transformers_version(adapter: ModelAdapter | None = None) -> None:
    """Refuse a transformers release outside the tested range (library-wide, then the adapter's own).

    The hooks read model internals that move between minor releases; an untested release could give
    wrong outputs instead of an error, so it is an error naming the range.
    """
    import transformers
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    found = Version(transformers.__version__)
    release = Version(".".join(map(str, found.release)))  # 5.26.0.dev0 counts as 5.26.0
    if release not in SpecifierSet(SUPPORTED_TRANSFORMERS):
        raise InputError(f"tokcompress.attach supports transformers {SUPPORTED_TRANSFORMERS}, found "
                         f"{transformers.__version__}; install a release in that range")
    extra = getattr(adapter, "transformers_versions", "")
    if extra and release not in SpecifierSet(extra):
        raise InputError(f"the {adapter.family} adapter supports transformers {extra} (within "
                         f"{SUPPORTED_TRANSFORMERS}), found {transformers.__version__}: {adapter.transformers_reason}")


@dataclass
class _Step:
    """Inputs of one decode call that continues a pruned prefill."""

    mask: torch.Tensor | None  # top-level 2-D mask (original space)
    past: int  # cache length of layer 0 before this call
    q: int  # new tokens in this call


@dataclass
class _Pruned:
    """What a pruned prefill left behind for the decode steps that continue it."""

    kept: Kept
    padding: torch.Tensor  # [B, M] bool 2-D mask of the kept sequence
    cache: Any = None  # weakref to the KV cache the prefill filled


class PruningHandle:
    """Hooks of one attached pruner on one model. ``stats`` describes the last pruned prefill."""

    def __init__(self, model: nn.Module, adapter: ModelAdapter, pruner: Pruner, keep: int | None,
                 ratio: float | None, renumber: bool, features: str = "hidden") -> None:
        self.model, self.adapter, self.pruner = model, adapter, pruner
        self.keep, self.ratio, self.renumber, self.features = keep, ratio, renumber, features
        spec = pruner.spec
        self.placement: str = spec.placement
        self.layer: int = spec.layer if self.placement == "layer" else 0
        self.stats: PruneStats | None = None
        self.last_selection: list[torch.Tensor] | None = None
        self._frozen: list[torch.Tensor] | None = None
        self._undo: list[Any] = []
        self.probe: AttentionProbe | None = None
        self._image_inputs: dict[str, Any] = {}
        self._vision_pending: tuple[torch.Tensor | None, float, int] | None = None
        self._reset_call()
        self._pruned: _Pruned | None = None
        self._decoder = adapter.decoder()
        self._layers = adapter.layers()
        self._text_config = adapter.text_config()
        self._layer_types = [adapter.layer_type(i) for i in range(len(self._layers))]
        self._check_placement()
        try:
            self._install()
        except BaseException:
            self.remove()
            raise

    # -- public ---------------------------------------------------------------------------
    def remove(self) -> None:
        """Undo everything `attach` did to the model (idempotent)."""
        while self._undo:
            self._undo.pop()()
        if _attached.get(self.model) is self:
            del _attached[self.model]

    def __enter__(self) -> "PruningHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    @property
    def active(self) -> bool:
        return _attached.get(self.model) is self

    def freeze(self, selection: list[torch.Tensor] | None = None) -> None:
        """Reuse a fixed selection (each row's kept visual positions) instead of running the pruner.

        Without an argument, freezes the last selection. Used to replay one keep set, e.g. to check
        a cached `generate` against a no-cache loop over the same kept tokens.
        """
        chosen = selection if selection is not None else self.last_selection
        if chosen is None:
            raise InputError("freeze() without a selection needs a pruned call first")
        self._frozen = [torch.as_tensor(c, dtype=torch.long) for c in chosen]

    def unfreeze(self) -> None:
        self._frozen = None

    def __repr__(self) -> str:
        where = f"layer {self.layer}" if self.placement == "layer" else self.placement
        budget = f"keep={self.keep}" if self.keep is not None else f"ratio={self.ratio}"
        return f"PruningHandle({type(self.model).__name__}, {self.pruner!r}, {where}, {budget})"

    # -- setup ----------------------------------------------------------------------------
    def _check_placement(self) -> None:
        p = self.placement
        provides = PLACEMENT_PROVIDES[p]
        for field, users in self.pruner.requires.items():
            if field not in provides:
                better = [q for q, fields in PLACEMENT_PROVIDES.items() if field in fields]
                raise InputError(
                    f"{', '.join(users)} needs VisualTokens.{field}, which placement {p!r} cannot provide "
                    f"(it provides: {', '.join(sorted(provides))}); placements that provide it: "
                    f"{', '.join(better) or 'none (pass the tensors to Pruner.select yourself)'}"
                )
        n = len(self._layers)
        if p == "layer" and not 1 <= self.layer < n:
            raise InputError(f"spec layer K={self.layer} is out of range for a {n}-layer decoder; expected 1 <= K < {n}")
        if self.features == "normed" and p == "vision":
            raise InputError("features='normed' applies the decoder's norm; placement 'vision' has vision features")
        if self.features == "normed" and self.pruner.merger is not None:
            raise InputError("features='normed' cannot be combined with a merger: merged features must stay in the "
                             "decoder's hidden-state space; use features='hidden'")
        if p == "vision" and not self.adapter.vision_placement:
            raise InputError(
                f"placement 'vision' is implemented for LLaVA only, not {self.adapter.family!r}; "
                "use placement 'pre_llm' or 'layer'"
            )

    def _hook(self, module: nn.Module, fn, *, post: bool = False) -> None:
        if post:
            h = module.register_forward_hook(fn, with_kwargs=True)
        else:
            h = module.register_forward_pre_hook(fn, with_kwargs=True)
        self._undo.append(h.remove)

    def _install(self) -> None:
        needs = self.pruner.requires
        self._undo.append(self._capture_image_inputs())
        self._hook(self.model, self._on_model)
        self._hook(self._decoder, self._on_lm)
        self._hook(self._decoder, self._on_lm_done, post=True)
        if self.placement == "layer":
            for i in range(self.layer, len(self._layers)):
                self._hook(self._layers[i], partial(self._on_layer, i))
            want_attn, want_keys = "attention" in needs, bool({"keys", "text_keys"} & needs.keys())
            if want_attn or want_keys:
                target = self.adapter.attention_module(self._layers[self.layer - 1])
                self.probe = AttentionProbe(target, want_attn, want_keys)
                self._undo.append(self.probe.install(self.model, self._text_config, self.adapter.text_config_key))
        if self.placement == "vision":
            from .vision import VisionSide

            self.vision = VisionSide(self)
            self._undo += self.vision.install()
        self._undo += self.adapter.install(self)

    def _capture_image_inputs(self):
        """Wrap this instance's ``get_image_features`` to record its arguments (image sizes, grids).

        ``generate`` encodes the images before its first forward and does not pass those arguments
        to ``forward`` again, so this is where the layout information is seen in every path.
        """
        import functools
        import inspect

        owner = self.adapter.image_features_owner()
        original = owner.get_image_features
        had_own = "get_image_features" in vars(owner)
        signature = inspect.signature(original)

        @functools.wraps(original)
        def get_image_features(*args, **kwargs):
            try:
                bound = signature.bind_partial(*args, **kwargs).arguments
            except TypeError:
                bound = kwargs
            self._image_inputs = {k: v for k, v in bound.items() if isinstance(v, torch.Tensor)}
            return original(*args, **kwargs)

        owner.get_image_features = get_image_features

        def undo() -> None:
            if had_own:
                owner.get_image_features = original
            else:
                del owner.get_image_features

        return undo

    # -- per-call state -------------------------------------------------------------------
    def _reset_call(self) -> None:
        self._call: CallInputs | None = None
        self._mode: str | None = None
        self._step: _Step | None = None
        self._positions: torch.Tensor | None = None
        self._memo: dict[Any, Any] = {}

    def _kept_for_length(self, length: int, full: int) -> Kept | None:
        """The prefill's `Kept` when a tensor of `length` belongs to the kept sequence of a `full`-length one."""
        p = self._pruned
        if self._mode == "prefill" and p is not None and length == p.kept.m and full == p.kept.n and length != full:
            return p.kept
        return None

    def _owns(self, cache: Any) -> bool:
        p = self._pruned
        return p is not None and cache is not None and p.cache is not None and p.cache() is cache

    # -- hooks ------------------------------------------------------------------------------
    def _on_model(self, module: nn.Module, args: tuple, kwargs: dict):
        self._reset_call()
        ids = kwargs.get("input_ids", args[0] if args else None)
        cache = _cache_arg(kwargs)
        past = _cache_len(cache)
        if ids is None:
            if past == 0 and any(kwargs.get(k) is not None for k in _IMAGE_INPUTS):
                raise InputError("tokcompress needs input_ids to find the image tokens; got only inputs_embeds")
            return None
        visual = ids == self.adapter.image_token_id
        mask = kwargs.get("attention_mask")
        if past == 0:
            self._pruned = None
            has_images = any(kwargs.get(k) is not None for k in _IMAGE_INPUTS) or bool(self._image_inputs)
            if has_images and bool(visual.any()):  # image ids without images are plain text to the model
                if mask is not None and not (isinstance(mask, torch.Tensor) and mask.dim() == 2):
                    raise InputError("pruning needs a 2-D attention_mask (or None), got a prepared mask")
                other = {k: v for k, v in kwargs.items() if k not in ("input_ids", "attention_mask")}
                self._call = CallInputs(ids, visual, mask, other)
            return None
        if not self._owns(cache):
            return None
        if any(kwargs.get(k) is not None for k in _IMAGE_INPUTS):
            raise InputError("new images after a pruned prefill are not supported; start a new sequence")
        if mask is not None and not (isinstance(mask, torch.Tensor) and mask.dim() == 2):
            raise InputError("decoding after pruning needs a 2-D attention_mask (or None), got a prepared mask")
        self._step = _Step(mask, past, ids.shape[1])
        if self.placement == "layer":
            return None
        return args, self._decode_inputs(kwargs)

    def _decode_inputs(self, kwargs: dict) -> dict:
        """Pre-LLM / vision decode: the 2-D mask and positions in the space of the pruned cache."""
        p, step = self._pruned, self._step
        n, m = p.kept.n, p.kept.m
        mask = step.mask
        kwargs = dict(kwargs)
        if mask is None:
            if not bool(p.padding.all()):
                tail = p.padding.new_ones(p.padding.shape[0], step.past + step.q - m)
                kwargs["attention_mask"] = torch.cat([p.padding, tail], dim=1).long()
        elif mask.shape[1] == step.past + step.q + (n - m):
            kwargs["attention_mask"] = torch.cat([p.padding.to(mask.dtype), mask[:, n:]], dim=1)
        elif mask.shape[1] != step.past + step.q:
            raise InputError(
                f"attention_mask has {mask.shape[1]} positions; expected {step.past + step.q + n - m} (the unpruned "
                f"sequence) or {step.past + step.q} (the pruned one) for {step.q} new tokens"
            )
        pos = kwargs.get("position_ids")
        if pos is not None and self.renumber:
            kwargs["position_ids"] = pos - _per_row(p.kept.dropped, pos)
        return kwargs

    def _on_lm(self, module: nn.Module, args: tuple, kwargs: dict):
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            return None
        cache = _cache_arg(kwargs)
        past = _cache_len(cache)
        B, L = embeds.shape[:2]
        call = self._call
        if call is not None and L == call.input_ids.shape[1] and past == 0:
            self._mode = "prefill"
            call.kwargs = {**self._image_inputs, **call.kwargs}
            kwargs = dict(kwargs)
            if kwargs.get("position_ids") is None:
                kwargs["position_ids"] = torch.arange(L, device=embeds.device).expand(B, L)
            self._positions = kwargs["position_ids"]
            if self.placement == "layer":
                if self.probe is not None:
                    self.probe.arm()
            else:
                self._prune_inputs(kwargs, cache)
            return args, kwargs
        if self._step is not None and self._owns(cache):
            self._mode = "decode"
            kwargs = dict(kwargs)
            if kwargs.get("position_ids") is None:
                offset = past + (self._pruned.kept.n - self._pruned.kept.m if self.placement != "layer" else 0)
                pos = torch.arange(L, device=embeds.device).expand(B, L) + offset
                if self.renumber and self.placement != "layer":
                    pos = pos - _per_row(self._pruned.kept.dropped, pos)
                kwargs["position_ids"] = pos
            self._positions = kwargs["position_ids"]
            return args, kwargs
        return None

    def _on_lm_done(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        if self._mode == "prefill":
            self._image_inputs = {}
            if self._pruned is not None:
                cache = _cache_arg(output) if isinstance(output, Mapping) else None
                self._pruned.cache = weakref.ref(cache) if cache is not None else None
        if self.probe is not None:
            self.probe.disarm()
        self._mode = None
        self._memo = {}

    def _on_layer(self, i: int, module: nn.Module, args: tuple, kwargs: dict):
        if self._mode is None:
            return None
        args, kwargs = list(args), dict(kwargs)
        hidden = args[0] if args else kwargs["hidden_states"]
        cache = _cache_arg(kwargs)
        if self._mode == "prefill":
            if i == self.layer:
                hidden = self._prune_hidden(hidden)
                if args:
                    args[0] = hidden
                else:
                    kwargs["hidden_states"] = hidden
            kept = self._pruned.kept
            pos = self._memo_get("pos", lambda: self._kept_positions(self._positions)) if self.renumber else None
            kwargs["position_embeddings"] = self._position_embeddings(i, kwargs.get("position_embeddings"), hidden, pos)
            ids = kwargs.get("position_ids")
            if isinstance(ids, torch.Tensor) and ids.shape[-1] == kept.n:
                kwargs["position_ids"] = self._memo_get(("ids", id(ids)), lambda: self._kept_positions(ids))
            padding = self._pruned.padding
        else:
            step, p = self._step, self._pruned
            if step.mask is not None and step.mask.shape[1] != step.past + step.q:
                raise InputError(
                    f"attention_mask has {step.mask.shape[1]} positions; expected {step.past + step.q} "
                    "(the unpruned sequence) when decoding after in-LLM pruning"
                )
            padding = self._memo_get("padding", lambda: _decode_padding(p, step))
            if self.renumber:
                pos = self._positions - _per_row(p.kept.dropped, self._positions)
                kwargs["position_embeddings"] = self._memo_get(
                    ("pe", self._layer_types[i]),
                    lambda: self.adapter.rotary(self._decoder, hidden, pos, self._layer_types[i]),
                )
                if isinstance(kwargs.get("position_ids"), torch.Tensor):
                    kwargs["position_ids"] = kwargs["position_ids"] - _per_row(p.kept.dropped, kwargs["position_ids"])
        kwargs["attention_mask"] = self._layer_mask(i, hidden, padding, cache)
        return tuple(args), kwargs

    # -- pruning ------------------------------------------------------------------------------
    def _prune_inputs(self, kwargs: dict, cache: Any) -> None:
        """Pre-LLM / vision prefill: gather the decoder's inputs to the kept sequence."""
        embeds = kwargs["inputs_embeds"]
        if self.placement == "vision":
            from .vision import rows_from_flat

            pending, self._vision_pending = self._vision_pending, None
            if pending is None:
                raise InputError("placement 'vision' found no image features for this prompt (no pixel_values?)")
            flat, seconds, count = pending
            visual = self._call.visual.to(embeds.device)
            if int(visual.sum()) != count:
                raise InputError(f"the vision-side selection covers {count} image features but the prompt holds "
                                 f"{int(visual.sum())} image tokens")
            chosen = self._frozen_choice(visual) if flat is None else rows_from_flat(visual, flat)
            kept = build_kept(visual, chosen)
            self._record(kept, chosen, seconds)
            new = take(embeds, kept.index, 1)
        else:
            kept, merged = self._choose(embeds, None, None)
            new = _scatter(take(embeds, kept.index, 1), kept, merged)
        padding = self._pruned.padding
        pos = self._kept_positions(kwargs["position_ids"])
        block = self.adapter.block_sequence_ids(self._call, kept.index, kept.real)
        kwargs["attention_mask"] = lm_mask(kwargs.get("attention_mask"), self._text_config, self._layer_types, new,
                                           padding, cache, block)
        kwargs["inputs_embeds"], kwargs["position_ids"] = new, pos
        self.adapter.gather_lm_kwargs(kwargs, kept.index, kept.real)

    def _prune_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """Layer-K prefill: select from layer K-1's output and gather it to the kept sequence."""
        attention = keys = None
        if self.probe is not None:
            if (self.probe.want_attention and self.probe.attention is None) or (self.probe.want_keys and self.probe.keys is None):
                raise InputError("the attention probe at layer K-1 did not run; was the model called with inputs_embeds only?")
            attention, keys = self.probe.attention, self.probe.keys
        kept, merged = self._choose(hidden, attention, keys)
        return _scatter(take(hidden, kept.index, 1), kept, merged)

    def _choose(self, feats: torch.Tensor, attention: torch.Tensor | None,
                keys: torch.Tensor | None) -> tuple[Kept, dict[int, torch.Tensor]]:
        """Run the pruner on each row's visual tokens; `Kept` plus merged features by row (if a merger ran)."""
        call = self._call
        visual = call.visual.to(feats.device)
        start = time.perf_counter()
        if self._frozen is not None:
            chosen, merged = self._frozen_choice(visual), {}
        else:
            source = self._decoder.norm(feats) if self.features == "normed" else feats
            probes = ModelTensors(source, attention, keys, call.attention_mask)
            chosen, merged = select_rows(self.pruner, visual, probes, self.adapter.row_layouts(call), self.keep, self.ratio)
        if feats.is_cuda:
            torch.cuda.synchronize(feats.device)
        seconds = time.perf_counter() - start
        kept = build_kept(visual, chosen)
        self._record(kept, chosen, seconds)
        return kept, merged

    def _record(self, kept: Kept, chosen: list[torch.Tensor], seconds: float) -> None:
        call = self._call
        self._pruned = _Pruned(kept, kept.padding(call.attention_mask))
        self.last_selection = [c.detach().cpu() for c in chosen]
        counts = call.visual.sum(dim=1).tolist()
        real = (call.attention_mask.bool() if call.attention_mask is not None else torch.ones_like(call.visual))
        text = (real & ~call.visual).sum(dim=1).tolist()
        self.stats = make_stats(self._text_config, self.placement, self.layer, counts, [len(c) for c in chosen], text, seconds)

    def _frozen_choice(self, visual: torch.Tensor) -> list[torch.Tensor]:
        if len(self._frozen) != visual.shape[0]:
            raise InputError(f"the frozen selection has {len(self._frozen)} rows but the batch has {visual.shape[0]}")
        out = []
        for b, c in enumerate(self._frozen):
            c = c.to(visual.device)
            if len(c) and (int(c.max()) >= visual.shape[1] or not bool(visual[b, c].all())):
                raise InputError(f"frozen selection row {b} points at positions that are not image tokens in this call")
            out.append(c)
        return out

    def _kept_positions(self, positions: torch.Tensor) -> torch.Tensor:
        """Position ids ([B, N] or [R, B, N]) of the kept tokens: original, or renumbered without gaps."""
        kept = self._pruned.kept
        out = take(positions, kept.index, -1)
        return out - _per_row_seq(kept.dropped_before, out) if self.renumber else out

    # -- tensors of layers >= K -------------------------------------------------------------
    def _memo_get(self, key: Any, make):
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def _position_embeddings(self, i: int, pe: Any, hidden: torch.Tensor, renumbered: torch.Tensor | None):
        """(cos, sin) for layer i's kept tokens: gathered, or recomputed at renumbered positions."""
        kept = self._pruned.kept
        if renumbered is not None:
            kind = self._layer_types[i]
            return self._memo_get(("pe", kind), lambda: self.adapter.rotary(self._decoder, hidden, renumbered, kind))
        if pe is None:
            return None
        return self._memo_get(("pe", id(pe[0])), lambda: tuple(
            take(t, kept.index, -2) if t.shape[-2] == kept.n else t for t in pe))

    def _layer_mask(self, i: int, hidden: torch.Tensor, padding: torch.Tensor, cache: Any):
        kind = self._layer_types[i]
        sizes = cache.get_mask_sizes(hidden.shape[1], i) if cache is not None else None
        key = ("mask", kind, sizes, hidden.shape[1])
        if key not in self._memo:
            block = None
            if self._mode == "prefill":
                block = self.adapter.block_sequence_ids(self._call, self._pruned.kept.index, self._pruned.kept.real)
            self._memo[key] = layer_mask(self._text_config, kind, hidden, padding, cache, i, block)
        return self._memo[key]


# -- helpers ---------------------------------------------------------------------------------
def _cache_arg(kwargs: Mapping[str, Any]) -> Any:
    """The KV cache among a forward's keyword arguments (or an output's fields).

    transformers 5.24 renamed ``past_key_values`` to ``cache`` (the old name still reaches a top-level
    ``forward`` from callers, renamed inside); both are looked up so either release works.
    """
    cache = kwargs.get("cache")
    return cache if cache is not None else kwargs.get("past_key_values")


def _cache_len(cache: Any) -> int:
    if cache is None:
        return 0
    try:
        return int(cache.get_seq_length())
    except (AttributeError, TypeError):
        return 0


def _per_row(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B] values shaped to broadcast over `like` ([B, q] or [R, B, q])."""
    return values.to(like.device).view(*([1] * (like.dim() - 2)), -1, 1)


def _per_row_seq(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B, M] values shaped to broadcast over `like` ([B, M] or [R, B, M])."""
    return values.to(like.device).view(*([1] * (like.dim() - 2)), *values.shape)


def _scatter(gathered: torch.Tensor, kept: Kept, merged: dict[int, torch.Tensor]) -> torch.Tensor:
    """Put merged features (one [k, D] tensor per row) at each row's kept visual slots."""
    if not merged:
        return gathered
    out = gathered.clone()
    for b, feats in merged.items():
        out[b, kept.visual[b]] = feats.to(out.dtype)
    return out


def _decode_padding(p: _Pruned, step: _Step) -> torch.Tensor:
    """2-D mask over a pruned layer's keys at a decode step: kept prefix, then the new tokens."""
    n = p.kept.n
    new = step.past + step.q - n
    if step.mask is None:
        tail = p.padding.new_ones(p.padding.shape[0], new)
    else:
        tail = step.mask[:, n:].to(p.padding.device).bool()
    return torch.cat([p.padding, tail], dim=1)

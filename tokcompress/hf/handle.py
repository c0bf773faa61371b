"""`attach`: run a tokcompress pruner inside a Hugging Face VLM, per model instance, during `generate`.

    with tokcompress.attach(model, "fastv", keep=64) as handle:
        out = model.generate(**inputs, max_new_tokens=32)
    print(handle.stats)

Everything is done with forward hooks on this model instance (plus, when a stage needs attention
or keys, the text model switched to a probing attention function registered under a unique name),
and all of it is undone by `PruningHandle.remove` (on leaving the ``with`` block, also on errors).
Where the pruner runs is the spec's ``apply`` block: each placement is its own strategy object
(`tokcompress.hf.placements`) over the handle's public `CallState`.
"""

from __future__ import annotations

import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..budget import Budget
from ..catalog import get_catalog
from ..errors import InputError
from ..pruner import Pruner, build_pruner
from ..spec import PrunerSpec
from .adapters import CallInputs, ModelAdapter, find_adapter
from .kept import Kept, build_kept, take
from .placements.base import ModelPlacement, Strategy
from .selection import ModelTensors, RowChoice, replay_rows, select_rows
from .state import CallState, Pruned, Step
from .stats import PruneStats, make_stats
from .tensors import cache_arg, cache_length, per_row_seq
from .versions import check_transformers_version

__all__ = ["attach", "PruningHandle"]

_IMAGE_INPUTS = ("pixel_values", "mm_encoder_outputs", "pixel_values_videos")
_attached: "weakref.WeakKeyDictionary[nn.Module, PruningHandle]" = weakref.WeakKeyDictionary()


def attach(model: nn.Module, pruner: "str | Path | Mapping[str, Any] | PrunerSpec | Pruner", *, keep: Any = None,
           ratio: Any = None, renumber_positions: bool | None = None, features: str | None = None) -> "PruningHandle":
    """Prune the visual tokens of `model` (a supported ``...ForConditionalGeneration``) with `pruner`.

    pruner: preset name, spec file path, spec mapping, `PrunerSpec` or a built `Pruner`; its spec's
    ``apply`` block says where it runs. keep / ratio: visual tokens kept per sample (per image for the
    vision placement), exactly one of them (`tokcompress.Budget`).
    renumber_positions / features: deprecated; set ``apply.positions`` / ``apply.features`` in the spec.
    Returns a `PruningHandle`; use it as a context manager or call ``.remove()``.
    """
    if model in _attached:
        raise InputError(f"{type(model).__name__} already has a tokcompress pruner attached; remove it first")
    adapter = find_adapter(model)
    check_transformers_version(adapter)
    budget = Budget.of(keep, ratio)
    built = pruner if isinstance(pruner, Pruner) else build_pruner(pruner)
    if renumber_positions is not None or features is not None:
        built = _override_apply(built, renumber_positions, features)
    handle = PruningHandle(model, adapter, built, budget)
    _attached[model] = handle
    return handle


def _override_apply(pruner: Pruner, renumber: bool | None, features: str | None) -> Pruner:
    apply = dict(pruner.spec.apply.model_dump(mode="json"))
    if renumber is not None:
        apply["positions"] = "contiguous" if renumber else "original"
    if features is not None:
        apply["features"] = features
    block = ", ".join(f"{k}: {v}" for k, v in apply.items())
    warnings.warn(f"attach(renumber_positions=, features=) is deprecated; put them in the spec: "
                  f"`apply: {{{block}}}`", DeprecationWarning, stacklevel=3)
    return build_pruner({**pruner.spec.to_dict(), "apply": apply})


class PruningHandle:
    """Hooks of one attached pruner on one model. ``stats`` describes the last pruned prefill."""

    def __init__(self, model: nn.Module, adapter: ModelAdapter, pruner: Pruner, budget: Budget) -> None:
        self.model, self.adapter, self.pruner, self.budget = model, adapter, pruner, budget
        entry = get_catalog().placements[pruner.spec.placement]
        if not issubclass(entry.cls, ModelPlacement):
            raise InputError(
                f"spec {pruner.spec.name or '<spec>'!r} has apply.placement {entry.name!r}: it runs through "
                "Pruner.prune on tensors you supply, not inside a model; choose a model placement "
                f"({', '.join(n for n, e in get_catalog().placements.items() if issubclass(e.cls, ModelPlacement))})"
            )
        self.state = CallState()
        self.stats: PruneStats | None = None
        self._warned_keep_all = False
        self._owner: int | None = None  # thread running a forward of the attached model
        self.last_selection: list[torch.Tensor] | None = None
        self.last_assignment: list[torch.Tensor] | None = None
        """Per row, for each visual token in sequence order, the position of the kept token it was folded
        into (a merger that assigns, e.g. ``assign``); None otherwise. `freeze` replays it."""
        self._undo: list[Any] = []
        self.decoder = adapter.decoder()
        self.layers = adapter.layers()
        self.text_config = adapter.text_config()
        self.layer_types = [adapter.layer_type(i) for i in range(len(self.layers))]
        self.strategy: Strategy = entry.cls.strategy(self, pruner.spec.apply)
        self.strategy.check_model()
        try:
            self._install()
        except BaseException:
            self.remove()
            raise

    # -- public ---------------------------------------------------------------------------
    @property
    def placement(self) -> str:
        return self.pruner.spec.placement

    @property
    def layer(self) -> int:
        """Pruning layer K (0 before the decoder)."""
        return self.strategy.layer

    @property
    def renumber(self) -> bool:
        return self.strategy.renumber

    @property
    def features(self) -> str:
        return self.strategy.features

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

    def freeze(self, selection: list[torch.Tensor] | None = None, assignment: list[torch.Tensor] | None = None) -> None:
        """Reuse a fixed selection (each row's kept visual positions) instead of running the pruner.

        Without arguments, freezes the last selection and, when the merger assigned dropped tokens to
        kept ones, the last assignment (`last_assignment`), so the kept tokens' sizes (attention bias)
        and merged features are replayed too. Used to replay one keep set, e.g. to check a cached
        `generate` against a no-cache loop over the same kept tokens.
        """
        chosen = selection if selection is not None else self.last_selection
        if chosen is None:
            raise InputError("freeze() without a selection needs a pruned call first")
        if assignment is None and selection is None:
            assignment = self.last_assignment
        if assignment is not None and (self.pruner.merger is None or not self.pruner.merger.gives_sizes()):
            raise InputError(f"freeze(assignment=...): {self.pruner!r} has no merger that assigns tokens "
                             "(e.g. merger: assign); freeze the selection alone")
        rows = []
        for b, c in enumerate(chosen):
            c = torch.as_tensor(c)
            if c.dim() != 1 or c.is_floating_point() or c.dtype == torch.bool:
                raise InputError(f"freeze(): row {b} must be a 1-D tensor of int positions, got {tuple(c.shape)} {c.dtype}")
            c = torch.sort(c.long()).values
            if len(c) and int(c[0]) < 0:
                raise InputError(f"freeze(): row {b} holds a negative position {int(c[0])}")
            if len(c) > 1 and bool((c[1:] == c[:-1]).any()):
                dup = int(c[1:][c[1:] == c[:-1]][0])
                raise InputError(f"freeze(): row {b} names position {dup} twice; each kept token is fed once")
            rows.append(c)
        self.state.frozen = rows
        self.state.frozen_assignment = None if assignment is None else _check_assignment(assignment, rows)

    def unfreeze(self) -> None:
        self.state.frozen = None
        self.state.frozen_assignment = None

    def __repr__(self) -> str:
        where = f"layer {self.layer}" if self.placement == "layer" else self.placement
        return f"PruningHandle({type(self.model).__name__}, {self.pruner!r}, {where}, {self.budget.label})"

    # -- setup ----------------------------------------------------------------------------
    def on_remove(self, undo) -> None:
        """Run `undo` when the handle is removed (for what a strategy installs after attach)."""
        self._undo.append(undo)

    def hook(self, module: nn.Module, fn, *, post: bool = False) -> None:
        """Register a forward (pre-)hook with kwargs, removed with the handle."""
        if post:
            h = module.register_forward_hook(fn, with_kwargs=True)
        else:
            h = module.register_forward_pre_hook(fn, with_kwargs=True)
        self._undo.append(h.remove)

    def _install(self) -> None:
        self._undo.append(self._capture_image_inputs())
        self.hook(self.model, self._on_model)
        h = self.model.register_forward_hook(self._on_model_done, always_call=True)
        self._undo.append(h.remove)
        self.hook(self.decoder, self._on_lm)
        self.hook(self.decoder, self._on_lm_done, post=True)
        self._undo += self.strategy.install()
        self._undo += self.adapter.install(self.state)

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
        state = self.state

        @functools.wraps(original)
        def get_image_features(*args, **kwargs):
            try:
                bound = signature.bind_partial(*args, **kwargs).arguments
            except TypeError:
                bound = kwargs
            state.image_inputs = {k: v for k, v in bound.items() if isinstance(v, torch.Tensor)}
            return original(*args, **kwargs)

        owner.get_image_features = get_image_features

        def undo() -> None:
            if had_own:
                owner.get_image_features = original
            else:
                del owner.get_image_features

        return undo

    # -- hooks shared by every placement ------------------------------------------------------
    def _on_model(self, module: nn.Module, args: tuple, kwargs: dict):
        me = threading.get_ident()
        if self._owner is not None and self._owner != me:
            raise InputError(
                f"{type(self.model).__name__} with a tokcompress pruner attached is already running a forward in another "
                "thread; the handle keeps per-call state, so one attached model serves one thread at a time: "
                "use one model (and one attach) per thread, or a lock around generate"
            )
        self._owner = me
        state = self.state
        state.new_call()
        ids = kwargs.get("input_ids", args[0] if args else None)
        cache = cache_arg(kwargs)
        past = cache_length(cache)
        if ids is None:
            if past == 0 and any(kwargs.get(k) is not None for k in _IMAGE_INPUTS):
                raise InputError("tokcompress needs input_ids to find the image tokens; got only inputs_embeds")
            return None
        visual = ids == self.adapter.image_token_id
        mask = kwargs.get("attention_mask")
        if past == 0:
            state.pruned = None
            has_images = any(kwargs.get(k) is not None for k in _IMAGE_INPUTS) or bool(state.image_inputs)
            if has_images and bool(visual.any()):  # image ids without images are plain text to the model
                if mask is not None and not (isinstance(mask, torch.Tensor) and mask.dim() == 2):
                    raise InputError("pruning needs a 2-D attention_mask (or None), got a prepared mask")
                other = {k: v for k, v in kwargs.items() if k not in ("input_ids", "attention_mask")}
                call = CallInputs(ids, visual, mask, other)
                if state.frozen is not None or not self._keeps_all(call):  # a frozen choice always runs the machinery
                    state.call = call
                    self.strategy.prepare()
            return None
        if not state.owns(cache):
            return None
        if any(kwargs.get(k) is not None for k in _IMAGE_INPUTS):
            raise InputError("new images after a pruned prefill are not supported; start a new sequence")
        if mask is not None and not (isinstance(mask, torch.Tensor) and mask.dim() == 2):
            raise InputError("decoding after pruning needs a 2-D attention_mask (or None), got a prepared mask")
        state.step = Step(mask, past, ids.shape[1])
        return self.strategy.decode_inputs(args, kwargs)

    def _on_model_done(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._owner = None

    def _on_lm(self, module: nn.Module, args: tuple, kwargs: dict):
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            return None
        state = self.state
        cache = cache_arg(kwargs)
        past = cache_length(cache)
        B, L = embeds.shape[:2]
        call = state.call
        if call is not None and L == call.input_ids.shape[1] and past == 0:
            state.mode = "prefill"
            call.kwargs = {**state.image_inputs, **call.kwargs}
            kwargs = dict(kwargs)
            if kwargs.get("position_ids") is None:
                kwargs["position_ids"] = torch.arange(L, device=embeds.device).expand(B, L)
            state.positions = kwargs["position_ids"]
            self.strategy.prefill(kwargs, cache)
            return args, kwargs
        if state.step is not None and state.owns(cache):
            state.mode = "decode"
            kwargs = dict(kwargs)
            if kwargs.get("position_ids") is None:
                pos = torch.arange(L, device=embeds.device).expand(B, L) + past
                kwargs["position_ids"] = self.strategy.decode_positions(pos)
            state.positions = kwargs["position_ids"]
            return args, kwargs
        return None

    def _on_lm_done(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        state = self.state
        if state.mode == "prefill":
            state.image_inputs = {}
            state.remember_cache(cache_arg(output) if isinstance(output, Mapping) else None)
        self.strategy.finish()
        state.mode = None
        state.memo = {}

    def _keeps_all(self, call: CallInputs) -> bool:
        """Whether the budget keeps every visual token of this prefill; then nothing is pruned (no probe,
        no gathering: the model runs as if nothing were attached) and `stats` says so. Warns once per
        handle when any row's budget reaches its visual-token count."""
        sizes = self.strategy.budget_units(call)
        full = [k >= n for k, n in zip(self.budget.counts(sizes), sizes)]
        if any(full) and not self._warned_keep_all:
            self._warned_keep_all = True
            warnings.warn(f"tokcompress: {self.budget.label} keeps every visual token of {sum(full)} of {len(full)} "
                          f"{self.strategy.unit}(s) ({', '.join(map(str, sizes))} tokens): those are not pruned "
                          "(handle.stats.visual_after)", stacklevel=2)
        if not all(full):
            return False
        self.last_selection = [row.nonzero().flatten().cpu() for row in call.visual]
        self.last_assignment = None
        self._describe(call, self.last_selection, 0.0, skipped=True)
        return True

    # -- pruning, shared by the placements ---------------------------------------------------
    def choose(self, feats: torch.Tensor, attention: torch.Tensor | None = None,
               keys: torch.Tensor | None = None) -> tuple[Kept, list[RowChoice]]:
        """Run the pruner on each row's visual tokens of `feats` [B, N, D] (or replay a frozen choice)."""
        call = self.state.call
        visual = call.visual.to(feats.device)
        start = time.perf_counter()
        if self.state.frozen is not None:
            chosen = self.frozen_choice(visual)
            if self.state.frozen_assignment is None:
                choices = [RowChoice(c) for c in chosen]
            else:
                assignments = self.frozen_assignment(visual, chosen)
                probes = ModelTensors(feats, None, None, call.attention_mask)
                choices = replay_rows(self.pruner, visual, probes, self.adapter.row_layouts(call), chosen, assignments)
        else:
            source = self.decoder.norm(feats) if self.strategy.features == "normed" else feats
            probes = ModelTensors(source, attention, keys, call.attention_mask)
            choices = select_rows(self.pruner, self.budget, visual, probes, self.adapter.row_layouts(call))
        if feats.is_cuda:
            torch.cuda.synchronize(feats.device)
        kept = build_kept(visual, [c.positions for c in choices])
        assignments = None if any(c.assignment is None for c in choices) else [c.assignment for c in choices]
        self.record(kept, [c.positions for c in choices], time.perf_counter() - start, assignments)
        return kept, choices

    def record(self, kept: Kept, chosen: list[torch.Tensor], seconds: float,
               assignments: list[torch.Tensor] | None = None) -> None:
        """Remember the kept sequence (and its attention bias) for decoding and describe the prefill in `stats`."""
        call = self.state.call
        bias = None
        if assignments is not None and self.pruner.merger is not None and self.pruner.merger.size_bias():
            bias = size_bias(kept, [RowChoice(c, assignment=a).sizes for c, a in zip(chosen, assignments)])
        self.state.pruned = Pruned(kept, kept.padding(call.attention_mask), bias=bias)
        self.last_selection = [c.detach().cpu() for c in chosen]
        self.last_assignment = None if assignments is None else [a.detach().cpu() for a in assignments]
        self._describe(call, chosen, seconds)

    def _describe(self, call: CallInputs, chosen: list[torch.Tensor], seconds: float, skipped: bool = False) -> None:
        """`stats` of this prefill: visual tokens before and after, text tokens, FLOPs, selection time."""
        counts = call.visual.sum(dim=1).tolist()
        real = call.attention_mask.bool() if call.attention_mask is not None else torch.ones_like(call.visual)
        text = (real & ~call.visual).sum(dim=1).tolist()
        self.stats = make_stats(self.text_config, self.placement, self.layer, counts, [len(c) for c in chosen], text,
                                seconds, skipped)

    def frozen_choice(self, visual: torch.Tensor) -> list[torch.Tensor]:
        frozen = self.state.frozen
        if len(frozen) != visual.shape[0]:
            raise InputError(f"the frozen selection has {len(frozen)} rows but the batch has {visual.shape[0]}")
        out = []
        for b, c in enumerate(frozen):
            c = c.to(visual.device)
            if len(c) and (int(c.max()) >= visual.shape[1] or not bool(visual[b, c].all())):
                raise InputError(f"frozen selection row {b} points at positions that are not image tokens in this call")
            out.append(c)
        return out

    def frozen_assignment(self, visual: torch.Tensor, chosen: list[torch.Tensor]) -> list[torch.Tensor]:
        """The frozen assignment of each row, checked against this call's visual tokens."""
        out = []
        for b, (a, c) in enumerate(zip(self.state.frozen_assignment, chosen)):
            n = int(visual[b].sum())
            if len(a) != n:
                raise InputError(f"frozen assignment row {b} has {len(a)} entries but the row holds {n} image tokens")
            out.append(a.to(visual.device))
        return out

    def kept_positions(self, positions: torch.Tensor) -> torch.Tensor:
        """Position ids ([B, N] or [R, B, N]) of the kept tokens: original, or renumbered without gaps."""
        kept = self.state.pruned.kept
        out = take(positions, kept.index, -1)
        return out - per_row_seq(kept.dropped_before, out) if self.strategy.renumber else out


def _check_assignment(assignment: list[torch.Tensor], rows: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each row's assignment as a long tensor: positions of kept tokens, every kept token to itself."""
    if len(assignment) != len(rows):
        raise InputError(f"freeze(): assignment has {len(assignment)} rows but the selection has {len(rows)}")
    out = []
    for b, (a, kept) in enumerate(zip(assignment, rows)):
        a = torch.as_tensor(a)
        if a.dim() != 1 or a.is_floating_point() or a.dtype == torch.bool:
            raise InputError(f"freeze(): assignment row {b} must be a 1-D tensor of int positions, got "
                             f"{tuple(a.shape)} {a.dtype}")
        a = a.long()
        if len(a) and not bool(torch.isin(a, kept).all()):
            bad = int(a[~torch.isin(a, kept)][0])
            raise InputError(f"freeze(): assignment row {b} points at position {bad}, which row {b} of the selection "
                             f"does not keep (kept: {kept.tolist()})")
        out.append(a)
    return out


def size_bias(kept: Kept, sizes: list[torch.Tensor]) -> torch.Tensor | None:
    """[B, M] float32 log-size of each kept visual slot (0 at text and filler slots); None when every size is 1."""
    if all(bool((s <= 1).all()) for s in sizes):
        return None
    bias = torch.zeros(kept.index.shape, dtype=torch.float32, device=kept.index.device)
    for b, s in enumerate(sizes):
        bias[b, kept.visual[b]] = torch.log(s.to(bias.device).clamp(min=1))
    return bias

"""`Placement`: where a pruner runs inside a model, as the validated ``apply`` block of a spec.

Each placement is a registered class with its own `Params` (the ``apply`` block, selected by
``placement``) and the `VisualTokens` fields it can fill from a model. `check` refuses a spec
whose stages need something the placement cannot supply, when the spec loads: ``tokcompress
validate`` and `tokcompress.attach` give the same message. The integration's placements (decoder
inputs, layer K, vision tower) live in `tokcompress.hf.placements`; ``none`` (here) marks a spec
that runs through `Pruner.prune` on tensors the caller supplies.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable

from .component import Component, Params
from .errors import SpecError

__all__ = ["Placement", "PrunerOnly"]


class Placement:
    """A place to apply a pruner. Subclasses set `name`, `provides` and `Params`."""

    name: ClassVar[str]
    provides: ClassVar[frozenset[str]] = frozenset()
    """`VisualTokens` fields this placement fills (``features`` and ``layout`` at least)."""
    attachable: ClassVar[bool] = True
    """False for a placement that `attach` cannot run (the spec is for `Pruner.prune` only)."""

    class Params(Params):
        pass

    def __init__(self, params: Params | None = None) -> None:
        self.params = params if params is not None else self.Params()

    def check(self, parts: dict[str, Component], others: Iterable["type[Placement]"]) -> None:
        """Refuse stages this placement cannot feed (`others`: every registered placement, for hints)."""
        for component in parts.values():
            for field in sorted(component.requires()):
                if field not in self.provides:
                    better = [p.name for p in others if field in p.provides and p.attachable]
                    raise SpecError(
                        f"{component.kind} {component.name!r} needs VisualTokens.{field}, which placement "
                        f"{self.name!r} cannot provide (it provides: {', '.join(sorted(self.provides))}); "
                        f"placements that provide it: {', '.join(better) or 'none'}; a spec meant for "
                        "Pruner.prune on tensors you supply says `apply: {placement: none}`"
                    )

    def describe(self) -> str:
        return self.name

    def label(self) -> dict[str, Any]:
        return {"placement": self.name, **self.params.model_dump(mode="json")}


class PrunerOnly(Placement):
    """``apply: {placement: none}``: no model placement; run with `Pruner.prune` on your own tensors
    (e.g. CDPruner's CLIP image and text embeddings, which no model forward computes)."""

    name = "none"
    attachable = False
    provides = frozenset({"features", "attention", "keys", "image_embeds", "text_keys", "text_embeds",
                          "text_features", "text_mask", "mask", "layout"})

    def check(self, parts: dict[str, Component], others: Iterable[type[Placement]]) -> None:
        return None

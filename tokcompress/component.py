"""`Component`: what every stage plugin is: a unique name, a kind, a nested pydantic `Params`, and
its capabilities as methods (they may depend on the parameters)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

__all__ = ["Component", "Params"]


class Params(BaseModel):
    """Base of every component's parameters: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Component:
    """A stage implementation. Subclasses set `name`, and define `Params` if they take any.

    `requires()` lists the optional `VisualTokens` fields the component reads (e.g. ``{"attention"}``);
    the pipeline refuses a call that lacks one, and a placement that cannot supply one refuses the
    spec, naming this component and the field.
    """

    kind: ClassVar[str]
    name: ClassVar[str]

    class Params(Params):
        pass

    def __init__(self, params: "Component.Params | None" = None) -> None:
        self.params = params if params is not None else self.Params()

    def requires(self) -> frozenset[str]:
        """Optional `VisualTokens` fields this component reads with its parameters."""
        return frozenset()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"

"""`Component`: what every stage plugin is: a unique name, a kind, a nested pydantic `Params`, and
its capabilities as methods (they may depend on the parameters).

Numbers in `Params` (and in every model built on `StrictNumbers`) are checked more strictly than
pydantic's default, because YAML turns typos into other types silently: ``true`` is not ``1``, an
integer must fit in int64 (torch's integer), a float must be finite. YAML's ``eps: 1`` and numpy
scalars (``np.float32(0.25)``) stay accepted. `Real`, `Int` and `Seed` carry the same rules for
fields outside `Params`.
"""

from __future__ import annotations

import functools
import math
import numbers
import types
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import numpy as np
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

__all__ = ["INT64_MAX", "INT64_MIN", "Component", "Int", "Params", "Real", "Seed", "StrictNumbers", "is_bool"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def is_bool(value: Any) -> bool:
    """True for Python and numpy booleans (``bool`` is an ``int`` subclass; ``np.bool_`` is neither)."""
    return isinstance(value, (bool, np.bool_))


def _refuse_bool(value: Any, expected: str) -> None:
    if is_bool(value):
        raise PydanticCustomError(
            "bool_not_number", "Input should be {expected}, not a boolean (true/false)", {"expected": expected}
        )


def _before_real(value: Any) -> Any:
    _refuse_bool(value, "a number")
    if isinstance(value, float):
        return _after_real(value)  # before range checks, so NaN is named as such
    if isinstance(value, numbers.Real) and not isinstance(value, (int, float)):  # np.float32, np.int64...
        try:
            return float(value)
        except OverflowError:
            raise PydanticCustomError("finite_number", "Input should be a finite number") from None
    return value


def _after_real(value: float) -> float:
    if not math.isfinite(value):
        raise PydanticCustomError("finite_number", "Input should be a finite number")
    return value


def _before_int(value: Any) -> Any:
    _refuse_bool(value, "an integer")
    if isinstance(value, numbers.Integral) and not isinstance(value, int):  # np.int64...
        return int(value)
    return value


def _after_int(value: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise PydanticCustomError(
            "int64_range", "Input should be an integer that fits in int64 ({low} to {high})",
            {"low": INT64_MIN, "high": INT64_MAX},
        )
    return value


Real = Annotated[float, BeforeValidator(_before_real), AfterValidator(_after_real)]
"""A finite float; ints and numpy reals are accepted, booleans refused."""
Int = Annotated[int, BeforeValidator(_before_int), AfterValidator(_after_int)]
"""An int64 integer; numpy integers and integral floats (``2.0``) are accepted, booleans and ``2.5`` refused."""
Seed = Annotated[int, BeforeValidator(_before_int), AfterValidator(_after_int), Field(ge=0, le=INT64_MAX)]
"""A random seed: an integer in ``[0, 2**63 - 1]``."""


def _numeric_kind(annotation: Any) -> str | None:
    """``"real"``, ``"int"``, ``"int_literal"`` or None (not a number) for a field's annotation."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _numeric_kind(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        kinds = {_numeric_kind(a) for a in get_args(annotation) if a is not type(None)}
        return kinds.pop() if len(kinds) == 1 else None
    if origin is Literal:
        values = get_args(annotation)
        return "int_literal" if values and all(isinstance(v, int) and not is_bool(v) for v in values) else None
    return {float: "real", int: "int"}.get(annotation)


class StrictNumbers(BaseModel):
    """Applies the `Real`/`Int` rules to every field annotated ``float``/``int`` (or Optional/Literal of them).

    Done by the base class, so third-party `Params` written with plain ``int`` and ``float`` get the
    same checks without changing a line. Each subclass registers validators for its own annotated
    fields (not ``"*"``: pydantic forbids a before-validator on a discriminator such as a spec
    block's ``name``); which rule applies is decided from the resolved field type at validation time.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = [n for n, a in cls.__dict__.get("__annotations__", {}).items() if _maybe_numeric(cls, a)]
        if names:  # a name per class: with multiple inheritance, one parent's validators must not hide another's
            tag = f"{cls.__name__}_{id(cls):x}"
            setattr(cls, f"strict_in_{tag}", field_validator(*names, mode="before", check_fields=False)(_strict_input))
            setattr(cls, f"strict_out_{tag}", field_validator(*names, mode="after", check_fields=False)(_strict_output))


def _maybe_numeric(cls: type, annotation: Any) -> bool:
    """False only for annotations known not to be numbers (a string one is evaluated when it can be)."""
    if isinstance(annotation, str):
        import sys

        try:
            annotation = eval(annotation, vars(sys.modules.get(cls.__module__, object)), dict(vars(cls)))  # noqa: S307
        except Exception:
            return annotation.split("[", 1)[0] != "ClassVar"
    return get_origin(annotation) is not ClassVar and _numeric_kind(annotation) is not None


def _strict_input(cls: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    kind = _field_kind(cls, info.field_name)
    if kind == "real":
        return _before_real(value)
    if kind == "int":
        return _before_int(value)
    if kind == "int_literal":
        _refuse_bool(value, "one of the listed integers")
    return value


def _strict_output(cls: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    kind = _field_kind(cls, info.field_name)
    if kind == "real" and isinstance(value, float):
        return _after_real(value)
    if kind == "int" and isinstance(value, int):
        return _after_int(value)
    return value


@functools.cache
def _field_kind(cls: type[BaseModel], name: str | None) -> str | None:
    field = cls.model_fields.get(name) if name else None
    return _numeric_kind(field.annotation) if field is not None else None


class Params(StrictNumbers):
    """Base of every component's parameters: unknown fields are errors, values are immutable, numbers strict."""

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

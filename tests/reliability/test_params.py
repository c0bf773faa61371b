"""Strict numbers, generated from every registered component's `Params` (stages, metrics, datasets)
and the suite's own models: for each numeric field a boolean is refused, a value outside its declared
range is refused naming the field, and a value inside it is accepted (also as a numpy scalar)."""

from __future__ import annotations

import math

import annotated_types as at
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

import tokcompress
from tokcompress.catalog import KINDS, Catalog
from tokcompress.component import INT64_MAX, INT64_MIN, _numeric_kind
from tokcompress.errors import InputError, SpecError
from tokcompress.plugins import new_plugin_manager
from tokcompress.pruner import resolve_budget
from tokcompress.study.suite import Budget, Generation, ModelEntry, Placement, SuiteError, Timing, load_suite


def _models() -> dict[str, tuple[type[BaseModel], dict]]:
    """``"kind name" -> (model, required fields)`` for everything a user configures with numbers."""
    catalog = Catalog(new_plugin_manager())
    kinds = [k for k, spec in KINDS.items() if spec.base is not None and hasattr(spec.base, "Params")]
    out = {f"{kind} {name}": (e.cls.Params, {}) for kind in kinds for name, e in catalog.entries(kind).items()}
    if "dataset jsonl" in out:
        out["dataset jsonl"] = (out["dataset jsonl"][0], {"path": "data.jsonl"})
    out.update({
        "suite models[]": (ModelEntry, {"source": "tiny-llava"}),
        "suite budgets[]": (Budget, {}),
        "suite generation": (Generation, {}),
        "suite timing": (Timing, {}),
    })
    return out


MODELS = _models()


def _bounds(field) -> tuple[float | None, bool, float | None, bool]:
    """(low, low is inclusive, high, high is inclusive) from the field's ge/gt/le/lt metadata."""
    low = high = None
    low_in = high_in = True
    for m in field.metadata:
        if isinstance(m, at.Ge):
            low, low_in = m.ge, True
        elif isinstance(m, at.Gt):
            low, low_in = m.gt, False
        elif isinstance(m, at.Le):
            high, high_in = m.le, True
        elif isinstance(m, at.Lt):
            high, high_in = m.lt, False
    return low, low_in, high, high_in


NUMERIC = sorted(
    (label, name)
    for label, (model, _) in MODELS.items()
    for name, field in model.model_fields.items()
    if _numeric_kind(field.annotation) in ("real", "int")
)
LITERAL_INTS = sorted(
    (label, name)
    for label, (model, _) in MODELS.items()
    for name, field in model.model_fields.items()
    if _numeric_kind(field.annotation) == "int_literal"
)
IDS = [f"{label}.{name}" for label, name in NUMERIC]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _field(label: str, name: str):
    model, base = MODELS[label]
    return model, base, model.model_fields[name], _numeric_kind(model.model_fields[name].annotation)


def _refused(label: str, name: str, value) -> str:
    model, base, _, _ = _field(label, name)
    with pytest.raises(ValidationError) as err:
        model.model_validate({**base, name: value})
    errors = err.value.errors()
    assert [e["loc"][:1] for e in errors] == [(name,)], errors  # the error is this field's and only this
    assert name in str(err.value)
    return errors[0]["msg"]


def _accepted(label: str, name: str, value) -> object:
    model, base, _, _ = _field(label, name)
    return getattr(model.model_validate({**base, name: value}), name)


def test_the_generated_cases_cover_every_component():
    assert len(NUMERIC) >= 25 and ("selector greedy_mis", "pivot_ratio") in NUMERIC
    assert ("selector random", "seed") in NUMERIC and ("suite models[]", "seed") in NUMERIC
    assert ("selector dart_pivots", "text_norm") in LITERAL_INTS


@pytest.mark.parametrize("label, name", NUMERIC, ids=IDS)
def test_every_numeric_parameter_declares_its_range(label, name):
    """A lower bound is always explicit; above, ints stop at int64 and floats at the finite ones."""
    _, _, field, kind = _field(label, name)
    low, _, high, _ = _bounds(field)
    assert low is not None, f"{label}: field {name!r} declares no lower bound (ge/gt)"
    if name == "seed":
        assert (low, high) == (0, INT64_MAX)


@pytest.mark.parametrize("label, name", NUMERIC + LITERAL_INTS, ids=IDS + [f"{a}.{b}" for a, b in LITERAL_INTS])
@pytest.mark.parametrize("value", [True, False, np.True_, np.False_], ids=["true", "false", "np.true", "np.false"])
def test_a_boolean_is_not_a_number(label, name, value):
    assert "not a boolean" in _refused(label, name, value)


@pytest.mark.parametrize("label, name", NUMERIC, ids=IDS)
@SETTINGS
@given(data=st.data())
def test_a_value_outside_the_range_is_refused_naming_the_field(label, name, data):
    _, _, field, kind = _field(label, name)
    low, low_in, high, high_in = _bounds(field)
    if kind == "int":
        outside = [st.integers(min_value=INT64_MAX + 1), st.integers(max_value=INT64_MIN - 1)]
        if low is not None:
            outside.append(st.integers(max_value=math.ceil(low) - 1 if low_in else math.floor(low)))
        if high is not None:
            outside.append(st.integers(min_value=math.floor(high) + 1 if high_in else math.ceil(high)))
    else:
        outside = [st.sampled_from([math.nan, math.inf, -math.inf, "nan", "inf"])]
        if low is not None:
            outside.append(st.floats(max_value=low, exclude_max=low_in, allow_nan=False, allow_infinity=False))
        if high is not None:
            outside.append(st.floats(min_value=high, exclude_min=high_in, allow_nan=False, allow_infinity=False))
    value = data.draw(st.one_of(outside))
    msg = _refused(label, name, value)
    assert any(w in msg for w in ("greater than", "less than", "int64", "finite")), msg


def _inside(kind: str, low, low_in, high, high_in):
    if kind == "int":
        lo = INT64_MIN if low is None else (math.ceil(low) if low_in else math.floor(low) + 1)
        hi = INT64_MAX if high is None else (math.floor(high) if high_in else math.ceil(high) - 1)
        return st.integers(min_value=lo, max_value=hi)
    return st.floats(min_value=low, max_value=high, exclude_min=low is not None and not low_in,
                     exclude_max=high is not None and not high_in, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize("label, name", NUMERIC, ids=IDS)
@SETTINGS
@given(data=st.data())
def test_a_value_inside_the_range_is_accepted_also_as_numpy(label, name, data):
    _, _, field, kind = _field(label, name)
    low, low_in, high, high_in = _bounds(field)
    value = data.draw(_inside(kind, low, low_in, high, high_in))
    assert _accepted(label, name, value) == value
    if kind == "int":
        got = _accepted(label, name, np.int64(value))
        assert type(got) is int and got == value
        if float(value).is_integer() and abs(value) < 2**53:  # YAML's `1024.0`: an integral float is an int
            assert _accepted(label, name, float(value)) == value
    else:
        assert _accepted(label, name, np.float64(value)) == value
        with np.errstate(over="ignore"):
            single = np.float32(value)
        inside = np.isfinite(single) and (low is None or (single >= low if low_in else single > low)) and (
            high is None or (single <= high if high_in else single < high))
        if inside:
            got = _accepted(label, name, single)
            assert type(got) is float and got == float(single)
        if float(value).is_integer() and abs(value) < 2**53:  # `eps: 1` in YAML is fine
            assert _accepted(label, name, int(value)) == value


@pytest.mark.parametrize("label, name", [c for c in NUMERIC if _field(*c)[3] == "int"], ids=str)
def test_a_fractional_value_is_not_an_integer(label, name):
    assert "fractional part" in _refused(label, name, 2.5)


# -- the same rules as users meet them ------------------------------------------------------------------------
def test_a_boolean_in_a_spec_file_names_stage_field_and_value(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("scorer: attention\ngraph: semantic\nselector: {name: greedy_mis, pivot_ratio: true}\n")
    with pytest.raises(SpecError) as err:
        tokcompress.load_spec(path)
    msg = str(err.value)
    assert str(path) in msg and "selector 'greedy_mis', field 'pivot_ratio'" in msg
    assert "Input should be a number, not a boolean" in msg and "(got True)" in msg


def test_a_seed_beyond_int64_is_refused_at_validation():
    with pytest.raises(SpecError, match=r"selector 'random', field 'seed': Input should be less than or equal to "
                                        r"9223372036854775807 \(got 1180591620717411303424\)"):
        tokcompress.load_spec({"selector": {"name": "random", "seed": 2**70}})
    assert tokcompress.load_spec({"selector": {"name": "random", "seed": INT64_MAX}}).selector.seed == INT64_MAX


def test_numpy_scalars_and_yaml_ints_are_welcome():
    spec = tokcompress.load_spec({"scorer": "attention", "graph": "semantic",
                                  "selector": {"name": "greedy_mis", "pivot_ratio": np.float32(0.25), "window": np.int64(8)}})
    assert spec.selector.pivot_ratio == 0.25 and type(spec.selector.window) is int
    scorer = {"name": "text_relevance", "eps": 1, "image": "features", "text": "text_features"}
    assert tokcompress.load_spec({"scorer": scorer, "selector": "topk"}).scorer.eps == 1.0


@pytest.mark.parametrize("field, value, words", [
    ("seeds", [True], "seeds.0': Input should be an integer, not a boolean"),
    ("seeds", [2**70], "seeds.0': Input should be an integer that fits in int64"),
    ("seeds", [-1], "seeds.0': Input should be greater than or equal to 0"),
    ("budgets", [True], "budgets.0': a budget must be a keep count"),
    ("generation", {"max_new_tokens": True}, "generation.max_new_tokens': Input should be an integer, not a boolean"),
    ("models", [{"source": "tiny-llava", "seed": 2**64}], "models.0.seed': Input should be an integer that fits in int64"),
])
def test_suite_numbers_are_strict(tmp_path, field, value, words):
    data = {"name": "s", "models": ["tiny-llava"], "dataset": "samples", "specs": ["random"], "budgets": [4], field: value}
    with pytest.raises(SuiteError) as err:
        load_suite(data)
    assert words in str(err.value)


def test_suite_budgets_take_numpy_scalars():
    suite = load_suite({"name": "s", "models": ["tiny-llava"], "dataset": "samples", "specs": ["random"],
                        "budgets": [np.int64(4), np.float32(0.5)]}).suite
    assert [b.kwargs() for b in suite.budgets] == [{"keep": 4}, {"ratio": 0.5}]


@pytest.mark.parametrize("kwargs, expected", [
    ({"ratio": np.float32(0.25)}, 144), ({"ratio": np.float64(0.5)}, 288), ({"keep": np.int64(7)}, 7),
    ({"keep": np.int32(1000)}, 576), ({"ratio": 1}, 576),
])
def test_resolve_budget_accepts_numpy_scalars(kwargs, expected):
    got = resolve_budget(576, **kwargs)
    assert got == expected and type(got) is int


@pytest.mark.parametrize("kwargs, words", [
    ({"keep": True}, "keep must be an int, got True"), ({"keep": np.True_}, "keep must be an int"),
    ({"ratio": True}, "ratio must be a number in (0, 1], got True"), ({"ratio": np.False_}, "ratio must be a number"),
    ({"keep": 2.0}, "keep must be an int, got 2.0"), ({"ratio": float("nan")}, "got nan"), ({"ratio": "0.5"}, "got '0.5'"),
])
def test_resolve_budget_refuses_booleans_and_non_numbers(kwargs, words):
    with pytest.raises(InputError) as err:
        resolve_budget(576, **kwargs)
    assert words in str(err.value)

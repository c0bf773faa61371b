"""Specs: presets, files, shorthands, extends, and errors that name the stage, field and file."""

from __future__ import annotations

import json

import pytest

import tokcompress
from tokcompress.catalog import get_catalog
from tokcompress.errors import SpecError
from tokcompress.spec import spec_hash, spec_model


def test_preset_by_name():
    spec = tokcompress.load_spec("fastv")
    assert spec.name == "fastv"
    assert (spec.placement, spec.apply.layer) == ("layer", 2)
    assert spec.scorer.name == "attention" and spec.selector.name == "topk"
    assert spec.debiaser is None and spec.graph is None


def test_yaml_and_json_files_give_the_same_spec(tmp_path):
    (tmp_path / "s.yaml").write_text("apply: {placement: pre_llm}\nselector: {name: random, seed: 7}\n")
    (tmp_path / "s.json").write_text(json.dumps({"apply": {"placement": "pre_llm"}, "selector": {"name": "random", "seed": 7}}))
    a, b = tokcompress.load_spec(tmp_path / "s.yaml"), tokcompress.load_spec(str(tmp_path / "s.json"))
    assert a == b and a.selector.seed == 7
    assert spec_hash(a) == spec_hash(b)


def test_unknown_component_names_stage_close_match_and_all_available():
    with pytest.raises(SpecError) as err:
        tokcompress.load_spec({"scorer": "atention", "selector": "topk"})
    msg = str(err.value)
    assert "stage 'scorer'" in msg and "unknown scorer 'atention'" in msg
    assert "Did you mean 'attention'?" in msg
    for name in get_catalog().components["scorer"]:
        assert name in msg


def test_unknown_parameter_names_field_component_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("selector:\n  name: random\n  sead: 3\n")
    with pytest.raises(SpecError) as err:
        tokcompress.load_spec(path)
    msg = str(err.value)
    assert str(path) in msg and "selector 'random', field 'sead'" in msg and "Extra inputs are not permitted" in msg


def test_mistyped_parameter_value_is_reported_with_the_value():
    with pytest.raises(SpecError, match=r"selector 'random', field 'seed'.*got 'abc'"):
        tokcompress.load_spec({"selector": {"name": "random", "seed": "abc"}})


def test_unknown_top_level_field_suggests_the_right_one():
    with pytest.raises(SpecError, match=r"unknown field 'selectr'. Did you mean 'selector'\?"):
        tokcompress.load_spec({"selectr": "topk"})


def test_missing_name_lists_available_components():
    with pytest.raises(SpecError, match=r"stage 'selector' has no 'name'; available selectors: .*topk"):
        tokcompress.load_spec({"selector": {"seed": 1}})


def test_unknown_preset_suggests_close_match():
    with pytest.raises(SpecError, match=r"unknown preset .*'fastvv'. Did you mean 'fastv'\?"):
        tokcompress.load_spec("fastvv")


def test_layer_must_be_positive():
    with pytest.raises(SpecError, match=r"apply 'layer', field 'layer': Input should be greater than or equal to 1"):
        tokcompress.load_spec({"selector": "topk", "scorer": "attention", "apply": {"layer": 0}})


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("selector: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        tokcompress.load_spec(path)


def test_spec_file_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- topk\n")
    with pytest.raises(SpecError, match="must hold a mapping of fields, got list"):
        tokcompress.load_spec(path)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(SpecError, match="cannot read spec file"):
        tokcompress.load_spec(tmp_path / "nope.yaml")


def test_extends_merges_same_component_and_replaces_or_removes_stages(tmp_path):
    path = tmp_path / "child.yaml"
    path.write_text("extends: fastv\napply: {layer: 3}\nscorer: null\nselector: {name: random, seed: 5}\n")
    spec = tokcompress.load_spec(path)
    assert spec.apply.layer == 3 and spec.scorer is None and spec.selector.name == "random"
    assert spec.name is None  # a child does not inherit its parent's name
    path.write_text("extends: random\nselector: {seed: 9}\n")  # same component: params merge
    assert tokcompress.load_spec(path).selector.seed == 9


def test_extends_cycle_is_reported(install_plugin):
    install_plugin(
        "tc-cycle",
        "tc_cycle",
        """
        from pathlib import Path
        from tokcompress.hookspecs import hookimpl

        @hookimpl
        def tokcompress_register_presets():
            return [Path(__file__).parent / "p"]
        """,
        files={"p/a.yaml": "extends: b\nselector: topk\n", "p/b.yaml": "extends: a\nselector: topk\n"},
    )
    with pytest.raises(SpecError, match=r"'extends' cycle: a -> b -> a"):
        tokcompress.load_spec("a")


def test_schema_lists_every_component_for_editor_completion():
    schema = spec_model(get_catalog()).model_json_schema()
    text = json.dumps(schema)
    for kind, entries in get_catalog().components.items():
        for name in entries:
            assert f"{kind}:{name}" in text
    assert set(schema["properties"]["apply"]["discriminator"]["mapping"]) == {"none", "pre_llm", "layer", "vision"}


def test_legacy_top_level_placement_fields_still_load_and_say_the_new_form(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("extends: fastv\nplacement: layer\nlayer: 3\n")
    with pytest.warns(DeprecationWarning, match=r"top-level 'placement', 'layer' are deprecated; write `apply: \{placement: layer, layer: 3\}`"):
        spec = tokcompress.load_spec(path)
    assert spec.apply.layer == 3 and spec.apply.placement == "layer"
    with pytest.warns(DeprecationWarning):  # the old loader ignored a layer outside placement 'layer'
        assert tokcompress.load_spec({"placement": "pre_llm", "layer": 5, "selector": "uniform"}).placement == "pre_llm"


def test_validate_refuses_what_attach_would_with_the_same_message():
    """The placement check runs when the spec loads: no model needed to learn a spec cannot run."""
    bad = {"apply": {"placement": "vision", "features": "normed"}, "scorer": "attention", "selector": "topk"}
    with pytest.raises(SpecError, match=r"apply 'vision', field 'features': Extra inputs are not permitted"):
        tokcompress.load_spec(bad)
    merged = {"apply": {"placement": "layer", "layer": 7, "features": "normed"}, "scorer": "attention",
              "selector": "visionzip", "merger": "contextual"}
    with pytest.raises(SpecError, match=r"apply.features 'normed' cannot be combined with a merger"):
        tokcompress.load_spec(merged)
    with pytest.raises(SpecError, match=r"scorer 'text_relevance' needs VisualTokens.image_embeds, which placement 'pre_llm' cannot"):
        tokcompress.load_spec({"extends": "cdpruner", "apply": {"placement": "pre_llm"}})


def test_every_shipped_preset_validates_and_builds():
    for name in get_catalog().presets:
        pruner = tokcompress.build_pruner(name)
        assert pruner.spec.name == name
        assert pruner.spec.description, f"preset {name} has no description"


def test_hash_ignores_nothing_that_changes_behaviour():
    a = tokcompress.load_spec({"selector": {"name": "random", "seed": 1}})
    b = tokcompress.load_spec({"selector": {"name": "random", "seed": 2}})
    assert spec_hash(a) != spec_hash(b)


def test_hash_ignores_name_and_description():
    a = tokcompress.load_spec({"name": "a", "description": "x", "selector": "uniform"})
    b = tokcompress.load_spec({"name": "b", "selector": "uniform"})
    assert spec_hash(a) == spec_hash(b)

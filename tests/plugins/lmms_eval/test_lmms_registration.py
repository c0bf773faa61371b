"""The plugin is found through lmms-eval's entry points, and bad ``--model_args`` are errors naming the argument."""

from __future__ import annotations

import re

import pytest
from lmms_support import get_model, make_model

from tokcompress.errors import InputError, SpecError
from tokcompress_lmms_eval.model import TokcompressChat, TokcompressSimple, pruner_spec
from tokcompress_lmms_eval.options import parse_options


def test_entry_point_registers_chat_and_simple_classes():
    from lmms_eval.models import MODEL_REGISTRY_V2

    manifest = MODEL_REGISTRY_V2.get_manifest("tokcompress")
    assert manifest.chat_class_path.endswith("TokcompressChat")
    assert get_model("tokcompress") is TokcompressChat
    assert get_model("tokcompress", force_simple=True) is TokcompressSimple
    assert TokcompressChat.is_simple is False and TokcompressSimple.is_simple is True


@pytest.mark.parametrize("args, message", [
    ({"pretrained": "grounding", "pruner": "d2pruner"}, "needs exactly one of keep .* or ratio"),
    ({"pretrained": "grounding", "pruner": "d2pruner", "keep": 8, "ratio": 0.5}, "needs exactly one of keep"),
    ({"pretrained": "grounding", "keep": 8}, "with pruner=none leave them out"),
    ({"pretrained": "grounding", "pruner": "fastv", "keep": 0}, r"keep: .*greater than or equal to 1 \(got 0\)"),
    ({"pretrained": "grounding", "pruner": "fastv", "ratio": 1.5}, r"ratio: .*less than or equal to 1 \(got 1.5\)"),
    ({"pretrained": "grounding", "dtype": "int8"}, r"dtype: .*'auto', 'float32', 'float16' or 'bfloat16' \(got 'int8'\)"),
    ({"pretrained": "grounding", "temprature": 0}, "temprature: unknown argument; expected one of pretrained, pruner"),
    ({}, "pretrained: Field required"),
    ({"pretrained": "grounding", "pruner": "{not json", "keep": 4}, "inline spec '{not json' is not valid JSON"),
])
def test_bad_model_args_name_the_argument(args, message):
    with pytest.raises(InputError, match=message):
        parse_options(args)


def test_pruner_forms_preset_file_inline_and_profile(tmp_path):
    assert pruner_spec(parse_options({"pretrained": "x"})) is None
    assert pruner_spec(parse_options({"pretrained": "x", "pruner": "fastv", "keep": 4})).name == "fastv"
    spec_file = tmp_path / "mine.yaml"
    spec_file.write_text("extends: fastv\napply: {layer: 3}\n")
    assert pruner_spec(parse_options({"pretrained": "x", "pruner": str(spec_file), "keep": 4})).apply.layer == 3
    inline = pruner_spec(parse_options({"pretrained": "x", "pruner": '{"extends": "fastv", "apply": {"layer": 1}}', "keep": 4}))
    assert inline.apply.layer == 1
    profiled = pruner_spec(parse_options({"pretrained": "x", "pruner": "d2pruner", "profile": "grounding-llava-k2", "ratio": 0.1}))
    assert profiled.debiaser.profile == "grounding-llava-k2"
    with pytest.raises(InputError, match="profile='grounding-llava-k2' sets the profile of a position_prior debiaser"):
        pruner_spec(parse_options({"pretrained": "x", "pruner": "fastv", "profile": "grounding-llava-k2", "keep": 4}))
    with pytest.raises(SpecError):
        pruner_spec(parse_options({"pretrained": "x", "pruner": "no-such-preset", "keep": 4}))


def test_unknown_checkpoint_is_an_error_naming_the_sources(tmp_path):
    with pytest.raises(InputError, match=re.escape(f"cannot load '{tmp_path}' as an image-text-to-text checkpoint")):
        make_model(f"pretrained={tmp_path}")


def test_multi_round_is_refused_with_the_reason():
    lm = make_model("pretrained=tiny-llava")
    with pytest.raises(NotImplementedError, match="does not run multi-round tasks"):
        lm.generate_until_multi_round([])


def test_grounding_model_is_imported_in_one_place():
    """The grounding plugin is reached from one module (its test set for the offline task)."""
    from pathlib import Path

    import tokcompress_lmms_eval

    package = Path(tokcompress_lmms_eval.__file__).parent
    users = sorted(p.name for p in package.glob("*.py") if "import tokcompress_grounding" in p.read_text() or "from tokcompress_grounding" in p.read_text())
    assert users == ["grounding_model.py"]


def test_plugin_distribution_declares_the_entry_point():
    import importlib
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    project = tomllib.loads((root / "plugins" / "lmms_eval" / "pyproject.toml").read_text())["project"]
    target = project["entry-points"]["lmms_eval.models"]["tokcompress"]
    module, attr = target.split(":")
    (manifest,) = getattr(importlib.import_module(module), attr)()
    assert manifest.model_id == "tokcompress"
    assert any(d.startswith("lmms-eval>=0.7.3") for d in project["dependencies"])


def test_task_writer_is_idempotent_and_names_the_test_set_by_absolute_path(tmp_path):
    from tokcompress_lmms_eval.grounding_model import TESTSET_JSONL
    from tokcompress_lmms_eval.tasks import TASK, write_tasks

    folder = write_tasks(tmp_path)
    text = (folder / f"{TASK}.yaml").read_text()
    assert f"test: {TESTSET_JSONL.resolve()}" in text
    assert write_tasks(tmp_path) == folder and (folder / f"{TASK}.yaml").read_text() == text

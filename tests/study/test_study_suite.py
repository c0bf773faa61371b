"""Suite validation: every mistake is reported with the file and the field, before any model loads."""

from __future__ import annotations

import pytest
import torch
import yaml

from tokcompress.study.suite import Budget, SuiteError, load_suite


def errors_of(suite_file, **fields) -> str:
    path = suite_file(**fields)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert str(path) in message
    return message


def test_valid_suite_resolves_specs_metrics_and_dataset(suite_file):
    loaded = load_suite(suite_file(specs=["fastv", {"label": "fastv-k3", "spec": {"extends": "fastv", "apply": {"layer": 3}}}]))
    assert [label for label, _ in loaded.specs] == ["fastv", "fastv-k3"]
    assert loaded.specs[1][1].apply.layer == 3
    assert [m.name for m in loaded.metrics] == ["first_token_agreement", "kl_next_token", "kept_tokens"]
    assert loaded.dataset.label() == "samples"
    assert [b.label for b in loaded.suite.budgets] == ["keep=4", "ratio=0.5"]


def test_budget_shorthands_and_errors(suite_file):
    assert Budget.model_validate(8).kwargs() == {"keep": 8}
    assert Budget.model_validate(0.25).kwargs() == {"ratio": 0.25}
    msg = errors_of(suite_file, budgets=[4, True, 0, 1.5, {"keep": 2, "ratio": 0.1}])
    assert "field 'budgets.1': a budget must be a keep count" in msg
    assert "field 'budgets.2.keep': keep must be >= 1, got 0" in msg
    assert "field 'budgets.3.ratio': Input should be less than or equal to 1 (got 1.5)" in msg
    assert "field 'budgets.4': pass exactly one of keep= or ratio=" in msg
    msg = errors_of(suite_file, budgets=[4, 0.5, {"keep": 4}])
    assert "field 'budgets': duplicate budget 'keep=4' at position 2" in msg


def test_unknown_fields_get_a_suggestion(suite_file):
    msg = errors_of(suite_file, modles=["tiny-llava"])
    assert "field 'modles': unknown field 'modles'. Did you mean 'models'?" in msg
    msg = errors_of(suite_file, models=[{"source": "tiny-llava", "dtyp": "float16"}])
    assert "field 'models.0.dtyp': unknown field 'dtyp'. Did you mean 'dtype'?" in msg
    msg = errors_of(suite_file, models=[{"source": "tiny-llava", "dtype": "float8"}])
    assert "field 'models.0.dtype'" in msg and "'float8'" in msg


def test_missing_required_fields(suite_file, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "models": ["tiny-llava"]}))
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    for field in ("dataset", "specs", "budgets"):
        assert f"field {field!r}: Field required" in str(info.value)


def test_unknown_spec_metric_and_dataset_are_named(suite_file):
    msg = errors_of(suite_file, specs=["fastv", "fastvv"], metrics=["kl_next_tokn"], dataset="nosuch")
    assert "field 'specs.1': unknown preset (and no such file) 'fastvv'. Did you mean 'fastv'?" in msg
    assert "field 'metrics.0.name': unknown metric 'kl_next_tokn'. Did you mean 'kl_next_token'?" in msg
    assert "field 'dataset.name': unknown dataset 'nosuch'" in msg


def test_bad_inline_spec_and_metric_params(suite_file):
    msg = errors_of(
        suite_file,
        specs=[{"label": "bad", "spec": {"extends": "fastv", "scorer": {"name": "attention", "temperature": 2}}}],
        metrics=[{"name": "grounding_acc", "threshold": 2}, {"name": "exact_match", "casefold": True}],
    )
    assert "field 'specs.0'" in msg and "scorer 'attention', field 'temperature'" in msg
    assert "field 'metrics.0.threshold': Input should be less than or equal to 1 (got 2; metric 'grounding_acc')" in msg
    assert "field 'metrics.1.casefold': Extra inputs are not permitted; metric 'exact_match' takes:" in msg


def test_duplicate_labels_and_reserved_label(suite_file):
    msg = errors_of(suite_file, specs=["fastv", {"label": "fastv", "spec": "random"}, {"label": "unpruned", "spec": "uniform"}])
    assert "two specs are labelled 'fastv'" in msg
    assert "the label 'unpruned' is reserved" in msg
    msg = errors_of(suite_file, models=["tiny-llava", {"source": "/x/tiny-llava"}])
    assert "duplicate model label 'tiny-llava'" in msg


def test_placement_override_that_breaks_a_spec_is_caught_at_load(suite_file):
    msg = errors_of(suite_file, placements=[{"placement": "pre_llm", "layer": 3}])
    assert "spec 'fastv@pre_llm3', seed 0:" in msg and "apply 'pre_llm', field 'layer': Extra inputs are not permitted (got 3)" in msg
    msg = errors_of(suite_file, placements=[{"placement": "pre_llm"}])  # fastv's scorer needs layer K-1's attention
    assert "spec 'fastv@pre_llm', seed 0:" in msg and "needs VisualTokens.attention, which placement 'pre_llm' cannot" in msg


def test_spec_file_relative_to_the_suite(suite_file, tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "mine.yaml").write_text("extends: fastv\napply: {layer: 3}\n")
    loaded = load_suite(suite_file(specs=["specs/mine.yaml"]))
    assert loaded.specs[0][0] == "mine" and loaded.specs[0][1].apply.layer == 3


def test_labelled_metric_on_an_unlabelled_dataset_is_refused(tmp_path, suite_file):
    from tokcompress.study.plan import build_plan

    (tmp_path / "img.png").write_bytes(_png())
    (tmp_path / "d.jsonl").write_text('{"image": "img.png", "prompt": "hi"}\n')
    loaded = load_suite(suite_file(dataset="d.jsonl", metrics=["exact_match"]))
    with pytest.raises(SuiteError, match="metric 'exact_match' needs the sample label 'answer'"):
        build_plan(loaded)


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    return buf.getvalue()


def test_shipped_suites_validate(tmp_path, monkeypatch):
    from tokcompress.study.suite import _shipped_suites

    shipped = _shipped_suites()
    assert {"tiny-cpu", "llava-1.5-7b"} <= set(shipped)
    assert load_suite("tiny-cpu").suite.models[0].tiny["image_size"] == 112
    # the GPU suite names a measured profile, which a study creates first with `tokcompress calibrate`
    with pytest.raises(SuiteError, match="profiles/llava-1.5-7b-k2"):
        load_suite("llava-1.5-7b")
    from tokcompress_d2pruner.profiles import save_profile

    monkeypatch.chdir(tmp_path)
    save_profile(tmp_path / "profiles" / "llava-1.5-7b-k2", {"image": torch.ones(24, 24)},
                 {"description": "", "analytic": False, "model": "m", "layer": 1, "pruning_layer": 2,
                  "num_images": 1, "prompt": "p", "seed": 42})
    loaded = load_suite("llava-1.5-7b")
    assert "d2pruner-measured" in [label for label, _ in loaded.specs]
    for name in shipped:  # every shipped suite runs the content-blind controls beside the methods
        assert {"random", "uniform", "pool"} <= {label for label, _ in load_suite(name).specs}, name


def test_unknown_shipped_suite_name(tmp_path):
    with pytest.raises(SuiteError, match="unknown suite .* 'tiny-cpuu'. Did you mean 'tiny-cpu'"):
        load_suite("tiny-cpuu")


def test_unknown_tiny_family_and_misplaced_tiny_options(suite_file):
    msg = errors_of(suite_file, models=["tiny-lava"])
    assert "field 'models.0': unknown tiny model 'tiny-lava'. Did you mean 'tiny-llava'?" in msg
    msg = errors_of(suite_file, models=[{"source": "/ckpt/llava", "tiny": {"image_size": 112}}])
    assert "field 'models.0': 'tiny' options apply to tiny-* models only" in msg


def test_duplicate_metric_names(suite_file):
    msg = errors_of(suite_file, metrics=["grounding_acc", {"name": "grounding_acc", "threshold": 0.75}])
    assert "field 'metrics': duplicate metric 'grounding_acc' at position 1" in msg


def test_what_a_run_needs_is_checked_at_load(suite_file):
    msg = errors_of(suite_file, models=[{"source": "tiny-llava", "tiny": {"text_layer": 3}}])
    assert "field 'models.0': 'tiny': unknown option 'text_layer'. Did you mean 'text_layers'?" in msg
    msg = errors_of(suite_file, models=[{"source": "tiny-llava", "device": "gpu0"}])
    assert "field 'models.0.device': model field 'device': 'gpu0' is not a torch device" in msg
    if not torch.cuda.is_available():
        msg = errors_of(suite_file, models=[{"source": "tiny-llava", "device": "cuda"}])
        assert "'cuda', but this torch has no usable CUDA device" in msg

"""Hostile documents: every file in corpus/ (plus a few generated here) is refused fast, with a short
message naming the file and what is wrong, by every reader and every CLI verb that takes a file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tokcompress import cli, load_spec
from tokcompress.catalog import get_catalog
from tokcompress.documents import MAX_ALIASES, MAX_BYTES, MAX_DEPTH, MAX_NODES, parse_document, read_document
from tokcompress.errors import DocumentError, SpecError, TokcompressError, shorten
from tokcompress.study.suite import SuiteError, load_suite
from tokcompress_d2pruner.profiles import ProfileError, load_profile, save_profile

CORPUS = Path(__file__).parent / "corpus"
MAX_SECONDS = 1.0
MAX_MESSAGE = 2000

# file -> words its error must contain (positions are 1-based line and column)
EXPECTED: dict[str, tuple[str, ...]] = {
    "alias_bomb.yaml": ("line 7, column 8", f"more than {MAX_NODES} values once aliases are expanded"),
    "alias_nest.yaml": ("line 8", f"more than {MAX_NODES} values once aliases are expanded"),
    "alias_count.yaml": ("line 3", f"more than {MAX_ALIASES} aliases"),
    "alias_recursive.yaml": ("line 2, column 35", "recursive structure"),
    "deep_nesting.yaml": ("line 2, column 74", f"nested deeper than {MAX_DEPTH} levels"),
    "deep_nesting_block.yaml": ("line 65", f"nested deeper than {MAX_DEPTH} levels"),
    "deep_nesting.json": ("line 1, column 77", f"nested deeper than {MAX_DEPTH} levels"),
    "duplicate_selector.yaml": ("line 5, column 1: duplicate key 'selector' (first at line 3, column 1)",),
    "duplicate_budgets_suite.yaml": ("line 7, column 1: duplicate key 'budgets' (first at line 6, column 1)",),
    "duplicate_keys.json": ("line 3, column 45: duplicate key 'seed' (first at line 3, column 34)",),
    "non_utf8.yaml": ("not UTF-8 text: byte 0xe9 at offset 38 (line 2, column 17)",),
    "python_object_apply.yaml": ("line 2, column 11", "tag '!!python/object/apply:os.system' is not allowed"),
    "python_name_key.yaml": ("line 2, column 1", "tag '!!python/name:os.system' is not allowed"),
    "custom_tag.yaml": ("line 1, column 11", "tag '!topk' is not allowed"),
    "nan.json": ("line 1, column 63", "NaN is not a JSON number"),
    "infinity.json": ("line 1, column 63", "-Infinity is not a JSON number"),
    "overflow.json": ("line 1, column 63", "1e999 is not a JSON number"),
    "control_character.yaml": ("line 1, column 14", "character U+0000 is not allowed"),
    "two_documents.yaml": ("line 2, column 1", "expected a single document"),
    "truncated.json": ("not valid JSON: line 2, column 1",),
}


def _generated(folder: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    """Hostile files too big to commit: written into `folder` on demand."""
    huge_yaml = folder / "huge.yaml"
    with open(huge_yaml, "w") as f:  # valid YAML, one byte over the limit
        f.write("selector: topk\ndescription: ")
        f.write("x" * (MAX_BYTES + 1 - f.tell() - 1) + "\n")
    huge_json = folder / "huge.json"
    huge_json.write_text('{"description": "' + "x" * MAX_BYTES + '"}')
    big_int = folder / "big_int.yaml"
    big_int.write_text("selector: {name: random, seed: " + "9" * 5000 + "}\n")
    quotes = folder / "escaped_quotes.json"  # quadratic for a naive string scanner
    quotes.write_text('["' + '\\"' * (MAX_BYTES // 2 - 8))
    return {
        "huge.yaml": (huge_yaml, (f"is too large: {MAX_BYTES + 1} bytes", f"limit MAX_BYTES = {MAX_BYTES}")),
        "huge.json": (huge_json, ("is too large",)),
        "big_int.yaml": (big_int, ("line 1, column 32", "integer cannot be read")),
        "escaped_quotes.json": (quotes, ("not valid JSON", "Unterminated string")),
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, tuple[Path, tuple[str, ...]]]:
    return _generated(tmp_path_factory.mktemp("generated"))


def _cases(generated) -> dict[str, tuple[Path, tuple[str, ...]]]:
    return {**{name: (CORPUS / name, words) for name, words in EXPECTED.items()}, **generated}


ALL = sorted(EXPECTED) + ["huge.yaml", "huge.json", "big_int.yaml", "escaped_quotes.json"]
JSON_OR_UNDECODABLE = [n for n in ALL if n.endswith(".json")] + ["non_utf8.yaml", "huge.yaml"]


def _check(exc: BaseException, path: Path, words: tuple[str, ...], elapsed: float) -> str:
    msg = str(exc)
    assert elapsed < MAX_SECONDS, f"{path.name}: took {elapsed:.2f} s"
    assert len(msg) < MAX_MESSAGE, f"{path.name}: message of {len(msg)} characters"
    assert str(path) in msg, msg
    for word in words:
        assert word in msg, f"{word!r} not in {msg!r}"
    return msg


def _timed(fn, *args):
    start = time.perf_counter()
    try:
        fn(*args)
    except TokcompressError as exc:
        return exc, time.perf_counter() - start
    raise AssertionError(f"{fn.__name__}{args} accepted a hostile document")


def test_every_corpus_file_has_expectations():
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(EXPECTED)
    assert max(p.stat().st_size for p in CORPUS.iterdir()) < 8192  # big cases are generated, not committed


# -- the readers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_read_document_refuses(name, generated):
    path, words = _cases(generated)[name]
    exc, elapsed = _timed(read_document, path)
    assert type(exc) is DocumentError
    _check(exc, path, words, elapsed)


@pytest.mark.parametrize("name", ALL)
def test_load_spec_refuses(name, generated):
    path, words = _cases(generated)[name]
    get_catalog()  # built once per test: time the document, not the plugin scan
    exc, elapsed = _timed(load_spec, path)
    assert isinstance(exc, SpecError)
    assert _check(exc, path, words, elapsed).startswith(("spec file", "cannot read spec file"))


@pytest.mark.parametrize("name", ALL)
def test_load_suite_refuses(name, generated):
    path, words = _cases(generated)[name]
    exc, elapsed = _timed(load_suite, path)
    assert isinstance(exc, SuiteError)
    assert _check(exc, path, words, elapsed).startswith("suite file")


META = {"description": "", "analytic": True, "model": None, "layer": None, "pruning_layer": None,
        "num_images": None, "prompt": None, "seed": None}


@pytest.mark.parametrize("name", JSON_OR_UNDECODABLE)
def test_load_profile_refuses(name, generated, tmp_path):
    source, words = _cases(generated)[name]
    save_profile(tmp_path / "p", {"image": torch.ones(2, 2)}, META)
    path = tmp_path / "p.json"
    shutil.copyfile(source, path)  # the hostile bytes as a profile's metadata
    exc, elapsed = _timed(load_profile, tmp_path / "p")
    assert isinstance(exc, ProfileError)
    assert _check(exc, path, words, elapsed).startswith("profile metadata")


# -- the command line ------------------------------------------------------------------------------------
@pytest.mark.parametrize("verb", ["validate", "ablate", "report"])
@pytest.mark.parametrize("name", ALL)
def test_cli_refuses(verb, name, generated, capsys):
    path, words = _cases(generated)[name]
    argv = {"validate": ["validate", str(path)], "ablate": ["ablate", str(path), "--dry-run", "--no-progress"],
            "report": ["report", str(path), "--no-plots"]}[verb]
    if verb == "report":  # a results database, not a document: the same file is refused as one
        words = ("is not a usable results database",)
    get_catalog()
    capsys.readouterr()
    start = time.perf_counter()
    code = cli.main(argv)
    elapsed = time.perf_counter() - start
    out = capsys.readouterr()
    assert code == 2 and out.out == ""
    assert out.err.startswith("error: ") and "Traceback" not in out.err
    _check(out.err, path, words, elapsed)
    assert path.exists() and (verb != "report" or not (path.parent / "report").exists())


def test_cli_process_refuses_an_alias_bomb_without_a_traceback():
    """The real entry point in a fresh process (the in-process tests above cover every verb and file)."""
    path = CORPUS / "alias_bomb.yaml"
    env = {**os.environ, "TOKCOMPRESS_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run([sys.executable, "-m", "tokcompress.cli", "ablate", str(path), "--dry-run"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr) < MAX_MESSAGE
    assert f"error: suite file {path} is not valid YAML: line 7, column 8: more than" in proc.stderr


# -- what the reader still accepts, and its exact limits ---------------------------------------------------
def _nested(depth: int, json: bool = False) -> str:
    return ('{"a": ' * (depth - 1) + "[]" + "}" * (depth - 1)) if json else ("[" * depth + "]" * depth)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_depth_limit_is_exact(suffix):
    ok = parse_document(_nested(MAX_DEPTH, suffix == ".json"), "t", suffix)
    assert ok is not None
    with pytest.raises(DocumentError, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_document(_nested(MAX_DEPTH + 1, suffix == ".json"), "t", suffix)


def test_alias_limit_is_exact():
    doc = "a: &a 1\nb: [{}]\n".format(", ".join(["*a"] * MAX_ALIASES))
    assert parse_document(doc, "t", ".yaml")["b"] == [1] * MAX_ALIASES
    with pytest.raises(DocumentError, match=f"more than {MAX_ALIASES} aliases"):
        parse_document(doc.replace("[*a", "[*a, *a"), "t", ".yaml")


def test_expanded_size_limit_counts_through_aliases():
    ten = "[" + ", ".join(["0"] * 9) + "]"  # 10 values
    doc = f"a: &a {ten}\nb: [" + ", ".join(["*a"] * 200) + "]\n"  # 2 000 values once expanded
    assert len(parse_document(doc, "t", ".yaml")["b"]) == 200
    big = f"a: &a [{', '.join(['0'] * 999)}]\nb: [" + ", ".join(["*a"] * 101) + "]\n"  # > 100 000
    with pytest.raises(DocumentError, match=f"more than {MAX_NODES} values"):
        parse_document(big, "t", ".yaml")


def test_anchors_merge_keys_and_overrides_still_work():
    doc = "base: &b {x: 1, y: 2}\nchild: {<<: *b, x: 3}\nboth: {<<: [*b, {z: 0}], y: 5}\nlist: [*b, *b]\n"
    data = parse_document(doc, "t", ".yaml")
    assert data["child"] == {"x": 3, "y": 2} and data["both"] == {"x": 1, "y": 5, "z": 0}
    assert data["list"] == [{"x": 1, "y": 2}] * 2


def test_plain_yaml_and_json_still_parse():
    assert parse_document("\ufeffa: 1\r\nb: [x, 'y', 2.5, true, null]\r\n", "t", ".yml") == {
        "a": 1, "b": ["x", "y", 2.5, True, None]}
    text = '{"a": "x\\"[{", "b": [1, -2.5e3, {"c": []}], "d": "\\\\"}'
    assert parse_document(text, "t", ".JSON") == {"a": 'x"[{', "b": [1, -2500.0, {"c": []}], "d": "\\"}


def test_keys_equal_after_resolution_are_duplicates():
    with pytest.raises(DocumentError, match=r"line 2, column 1: duplicate key 'true' \(first as '1' at line 1"):
        parse_document("1: a\ntrue: b\n", "t", ".yaml")
    with pytest.raises(DocumentError, match=r"line 2, column 4: duplicate key 'name' in this mapping \(the same alias"):
        parse_document("k: &k name\nm: {*k : 1, *k : 2}\n", "t", ".yaml")


def test_nested_json_duplicate_is_located_in_its_own_object():
    text = '{"a": {"x": 1},\n "b": {"x": 2, "y": 3,\n   "x": 4}}'
    with pytest.raises(DocumentError, match=r"line 3, column 4: duplicate key 'x' \(first at line 2, column 8\)"):
        parse_document(text, "t", ".json")


def test_messages_never_echo_long_input():
    key = "k" * 50_000
    with pytest.raises(DocumentError) as err:
        parse_document(f"? {key}\n: 1\n? {key}\n: 2\n", "t", ".yaml")
    assert "duplicate key" in str(err.value) and len(str(err.value)) < 500
    with pytest.raises(DocumentError) as err:
        parse_document(f'{{"{key}": 1, "{key}": 2}}', "t", ".json")
    assert "duplicate key" in str(err.value) and len(str(err.value)) < 500
    with pytest.raises(DocumentError) as err:
        parse_document(f"a: !{key} 1\n", "t", ".yaml")
    assert "is not allowed" in str(err.value) and len(str(err.value)) < 500


def test_a_python_tag_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    doc = f"x: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(DocumentError, match="is not allowed"):
        parse_document(doc, "t", ".yaml")
    assert not marker.exists()


def test_errors_take_the_callers_class(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("a: 1\na: 2\n")
    with pytest.raises(SpecError, match=rf"^widget {path} is not valid YAML: line 2"):
        read_document(path, "widget", error=SpecError)
    with pytest.raises(DocumentError, match=r"^cannot read document .*nope.yaml: No such file"):
        read_document(tmp_path / "nope.yaml")
    with pytest.raises(DocumentError, match=r"cannot read document .*: Is a directory"):
        read_document(tmp_path)


def test_shorten_bounds_any_value():
    assert len(shorten("x" * 10**6)) <= 200 and len(shorten("y" * 10**6, quote=False)) <= 200
    assert len(shorten(list(range(10**5)))) <= 200 and shorten("ok") == "'ok'"


# -- bounded messages after parsing (validation echoes the value) -----------------------------------------
LONG = "z" * 600_000


def test_a_long_value_in_a_suite_is_not_echoed(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\nmodels: [tiny-llava]\ndataset: samples\nspecs: [random]\nbudgets: [4]\nseeds: [{LONG!r}]\n")
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert "field 'seeds.0'" in str(err.value) and len(str(err.value)) < MAX_MESSAGE


def test_a_long_unknown_name_is_not_echoed():
    with pytest.raises(SpecError) as err:
        load_spec({"selector": LONG})
    assert "unknown selector 'zzz" in str(err.value) and len(str(err.value)) < MAX_MESSAGE


def test_a_long_value_in_a_spec_is_not_echoed():
    with pytest.raises(SpecError) as err:
        load_spec({"selector": {"name": "random", "seed": LONG}})
    assert len(str(err.value)) < MAX_MESSAGE

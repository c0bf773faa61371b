"""The ``tokcompress`` command line."""

from __future__ import annotations

import json

from tokcompress.cli import main


def test_plugins_json_lists_kind_name_and_distribution(capsys):
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    topk = next(r for r in rows if r["name"] == "topk")
    assert topk["kind"] == "selector" and topk["provider"] == "core (tokcompress)"
    assert {r["kind"] for r in rows} >= {"scorer", "debiaser", "graph", "selector", "merger", "metric", "dataset"}


def test_plugins_table_renders(capsys):
    assert main(["plugins"]) == 0
    assert "topk" in capsys.readouterr().out


def test_presets_json(capsys):
    assert main(["presets", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["fastv"]["stages"] == {"scorer": "attention", "selector": "topk"}
    assert rows["fastv"]["apply"] == {"placement": "layer", "layer": 2, "features": "hidden", "positions": "original"}


def test_schema_is_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "PrunerSpec" and "selector" in schema["required"]


def test_validate_ok_and_error(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text("extends: fastv\napply: {layer: 3}\n")
    assert main(["validate", str(good), "fastv", "cdpruner", "--show"]) == 0
    out = capsys.readouterr().out
    assert f"ok: {good}" in out and '"layer": 3' in out
    assert "ok: cdpruner (apply.placement 'none': runs through Pruner.prune only; attach refuses it)" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("selector: {name: topk}\nscorer: {name: attention, temperature: 2}\n")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "scorer 'attention', field 'temperature'" in err

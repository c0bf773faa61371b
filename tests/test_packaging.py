"""Every distribution of this repository: core and plugins, each with its own pyproject, LICENSE and entry points."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = [ROOT, ROOT / "plugins" / "baselines", ROOT / "plugins" / "d2pruner", ROOT / "plugins" / "grounding",
                 ROOT / "plugins" / "lmms_eval", ROOT / "registry"]


def test_every_plugin_folder_is_a_distribution():
    folders = {p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml")}
    assert folders == {p for p in DISTRIBUTIONS if p.parent.name == "plugins"}
    assert {p.name for p in (ROOT / "plugins").iterdir() if p.is_dir()} == {p.name for p in folders}


@pytest.mark.parametrize("root", DISTRIBUTIONS, ids=lambda p: p.name)
def test_distribution_metadata_and_entry_points(root):
    import importlib

    config = tomllib.loads((root / "pyproject.toml").read_text())
    project = config["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert (root / "LICENSE").read_text().startswith("\n                                 Apache License") or \
        "Apache License" in (root / "LICENSE").read_text()[:200]
    for group in project["entry-points"].values():  # tokcompress's group, or lmms-eval's for its plugin
        for target in group.values():
            importlib.import_module(target.split(":")[0])
    if root != ROOT:
        assert "tokcompress" in project["dependencies"]


def test_core_ships_no_method_plugin():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["packages"]["find"]["include"] == ["tokcompress*"]
    assert set(config["project"]["entry-points"]["tokcompress"]) == {"core", "study", "hf"}


def test_sdist_carries_the_whole_test_suite():
    manifest = (ROOT / "MANIFEST.in").read_text()
    assert "graft tests" in manifest

"""The wheel must ship every package folder: pyproject's explicit package list is checked here."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    dirs = {name: ROOT / path for name, path in config["package-dir"].items()}
    found = set()
    for top, folder in dirs.items():
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder)
            found.add(".".join((top, *rel.parts)))
    assert found == listed, f"missing from pyproject: {sorted(found - listed)}; stale: {sorted(listed - found)}"


def test_entry_points_name_importable_modules():
    import importlib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for name, target in config["project"]["entry-points"]["tokcompress"].items():
        importlib.import_module(target)

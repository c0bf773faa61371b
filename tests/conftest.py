"""Shared fixtures: a fresh plugin manager per test, and a real third-party plugin on a temp path."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import tokcompress.plugins


@pytest.fixture(autouse=True)
def fresh_plugin_manager():
    """Each test starts from a newly built plugin manager and catalog, and leaves none behind."""
    tokcompress.plugins.reset()
    yield
    tokcompress.plugins.reset()


@pytest.fixture
def install_plugin(tmp_path, monkeypatch):
    """Install a throwaway distribution with a ``tokcompress`` entry point, discovered by importlib.metadata.

    ``install_plugin(dist, module, source, files={})`` writes ``module.py`` and a ``dist-1.0.dist-info``
    folder on a temporary sys.path entry, exactly what ``pip install`` leaves behind.
    """

    def install(dist: str, module: str, source: str, files: dict[str, str] | None = None) -> Path:
        root = tmp_path / f"site-{dist}"
        root.mkdir()
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        for name, text in (files or {}).items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(textwrap.dedent(text))
        info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[tokcompress]\n{module} = {module}\n")
        monkeypatch.syspath_prepend(str(root))
        monkeypatch.delitem(sys.modules, module, raising=False)
        tokcompress.plugins.reset()
        return root

    return install

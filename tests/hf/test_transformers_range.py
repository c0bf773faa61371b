"""The supported transformers range: releases outside it (library-wide or an adapter's) are refused by name."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import tokcompress
from tokcompress.errors import InputError
from tokcompress.hf import versions as handle
from tokcompress.hf.tiny import build_tiny_model

ROOT = Path(__file__).resolve().parents[2]


def pretend(monkeypatch, version: str) -> None:
    """Make the imported transformers report `version` (looked up now: building a model can rebind the module)."""
    monkeypatch.setattr(sys.modules["transformers"], "__version__", version)


@pytest.mark.parametrize("version", ["5.13.1", "5.26.0", "5.26.0.dev0", "6.0.0", "4.57.6"])
def test_outside_the_range_is_an_error_naming_it(tiny, monkeypatch, version):
    model = tiny("llava")
    pretend(monkeypatch, version)
    with pytest.raises(InputError, match=re.escape(f"supports transformers {handle.SUPPORTED_TRANSFORMERS}, found {version}")):
        tokcompress.attach(model, "fastv", keep=4)


@pytest.mark.parametrize("version", ["5.14.0", "5.20.2", "5.25.0", "5.25.3", "5.25.1rc1"])
def test_inside_the_range_attaches(tiny, monkeypatch, version):
    model = tiny("llava")
    pretend(monkeypatch, version)
    tokcompress.attach(model, "fastv", keep=4).remove()


def test_an_adapter_narrows_the_range_with_its_reason(tiny, monkeypatch):
    smol, llava = tiny("smolvlm"), tiny("llava")
    pretend(monkeypatch, "5.20.1")
    with pytest.raises(InputError, match=r"smolvlm adapter supports transformers !=5\.20\.1,!=5\.20\.2 .*inputs_merger"):
        tokcompress.attach(smol, "fastv", keep=4)
    tokcompress.attach(llava, "fastv", keep=4).remove()  # other families are fine there


def test_the_installed_release_is_supported():
    """The test session itself runs on a supported release (make test runs tests/hf at both ends)."""
    handle.check_transformers_version()


def test_package_metadata_states_the_same_range():
    text = (ROOT / "pyproject.toml").read_text()
    assert f'"transformers{handle.SUPPORTED_TRANSFORMERS}"' in text.replace(" ", "")


def test_a_failed_check_leaves_the_model_unattached(monkeypatch):
    model, _ = build_tiny_model("llava")
    pretend(monkeypatch, "5.26.0")
    with pytest.raises(InputError):
        tokcompress.attach(model, "fastv", keep=4)
    monkeypatch.undo()
    tokcompress.attach(model, "fastv", keep=4).remove()

"""An untested transformers release is flagged when a pruner is attached (the hooks read model internals)."""

from __future__ import annotations

import warnings

import pytest

from tokcompress.hf import versions


def test_untested_release_warns_and_the_tested_one_does_not(monkeypatch):
    import transformers

    monkeypatch.setattr(transformers, "__version__", "4.99.0")
    with pytest.warns(UserWarning, match=r"tested with transformers .*found 4.99.0"):
        versions.check_transformers_version()
    monkeypatch.setattr(transformers, "__version__", versions.TESTED_TRANSFORMERS + "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        versions.check_transformers_version()


def test_attach_runs_the_check(tiny, monkeypatch):
    import tokcompress

    calls = []
    monkeypatch.setattr("tokcompress.hf.handle.check_transformers_version", lambda: calls.append(1))
    tokcompress.attach(tiny("llava"), "fastv", keep=2).remove()
    assert calls == [1]

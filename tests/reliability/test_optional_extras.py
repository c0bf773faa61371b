"""Without the optional ``plots`` extra (matplotlib), commands still do what they can and say what is missing."""

from __future__ import annotations

import sys

from tokcompress.cli import main


def test_calibrate_writes_the_profile_and_hints_at_the_missing_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    out = tmp_path / "tiny-k2"
    argv = ["calibrate", "--model", "tiny-llava", "--images", "samples", "--num-images", "2", "--no-progress",
            "--threads", "1", "-o", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "matplotlib is not installed (pip install 'tokcompress[plots]')" in captured.err
    assert "Traceback" not in captured.err
    assert out.with_suffix(".safetensors").is_file() and not out.with_suffix(".png").exists()

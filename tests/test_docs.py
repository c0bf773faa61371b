"""The plugin guide's example is a real, working third-party plugin of under 40 lines."""

from __future__ import annotations

import re
from pathlib import Path

import torch

import tokcompress
from tokcompress import VisualTokens

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def test_plugin_guide_example_installs_and_runs(install_plugin):
    text = GUIDE.read_text()
    source = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert len(source.strip().splitlines()) < 40
    install_plugin("my-selector", "my_selector", source)
    spec = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    pruner = tokcompress.build_pruner(__import__("yaml").safe_load(spec))
    mask = torch.tensor([[True] * 20, [True] * 12 + [False] * 8])
    tokens = VisualTokens(torch.randn(2, 20, 3), attention=torch.rand(2, 20), mask=mask)
    out = pruner.select(tokens, keep=8)
    top = torch.sort(tokens.attention[1, :12], descending=True, stable=True).indices[:4]
    assert set(top.tolist()) <= set(out[1].tolist())
    assert bool(out[1].lt(12).all())

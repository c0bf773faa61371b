"""Study fixtures: suite files on a temp path and a model-free worker for runner/database tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from study_fakes import FakeWorker


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a shared machine spinning OpenMP threads cost 10-20x."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fake_worker():
    FakeWorker.calls = []
    return FakeWorker


def base_suite(**overrides) -> dict:
    suite = {
        "name": "unit",
        "models": ["tiny-llava"],
        "dataset": {"name": "samples", "limit": 3},
        "specs": ["fastv", "random"],
        "budgets": [4, 0.5],
        "metrics": ["first_token_agreement", "kl_next_token", "kept_tokens"],
    }
    suite.update(overrides)
    return suite


@pytest.fixture
def suite_file(tmp_path):
    """``suite_file(**fields) -> Path`` of a suite YAML on tmp_path (fields override a small default)."""

    def write(name: str = "suite.yaml", **overrides) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(base_suite(**overrides)))
        return path

    return write

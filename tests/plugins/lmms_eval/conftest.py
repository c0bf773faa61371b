"""The lmms-eval plugin's tests run offline: hub, datasets and kernels off, datasets cached in a temp folder.

Set before any test module imports lmms-eval (``datasets`` reads these at import). The test modules
skip themselves, with the reason, when lmms-eval or the plugin is not installed (`lmms_support`).
"""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("USE_HUB_KERNELS", "0")
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="tokcompress-lmms-datasets-"))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small models on a shared machine: one thread is fastest. Module-wide and autouse (so set first): module
    fixtures computing a reference use the reduction order of the tests comparing with it (exact equality)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)

"""Built-in study metrics and datasets, registered through the ``tokcompress`` entry point ``study``."""

from __future__ import annotations

from ..hookspecs import hookimpl
from .datasets import GroundingTestDataset, JsonlDataset, SamplesDataset
from .metrics import BUILTIN_METRICS


@hookimpl
def tokcompress_register_metrics():
    return list(BUILTIN_METRICS)


@hookimpl
def tokcompress_register_datasets():
    return [JsonlDataset, SamplesDataset, GroundingTestDataset]

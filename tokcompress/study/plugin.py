"""Built-in study metrics, datasets and commands, registered through the ``tokcompress`` entry point ``study``."""

from __future__ import annotations

from ..hookspecs import hookimpl
from .datasets import JsonlDataset, SamplesDataset
from .metrics import BUILTIN_METRICS


@hookimpl
def tokcompress_register_metrics():
    return list(BUILTIN_METRICS)


@hookimpl
def tokcompress_register_datasets():
    return [JsonlDataset, SamplesDataset]


@hookimpl
def tokcompress_register_commands():
    from .commands.ablate import AblateCommand
    from .commands.report import ReportCommand

    return [AblateCommand, ReportCommand]

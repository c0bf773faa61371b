"""pluggy hook specifications. Every hook returns classes (or paths), never instances."""

from __future__ import annotations

from pathlib import Path

import pluggy

__all__ = ["hookimpl", "hookspec", "PROJECT"]

PROJECT = "tokcompress"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def tokcompress_register_scorers() -> list[type]:
    """Return `Scorer` subclasses."""


@hookspec
def tokcompress_register_debiasers() -> list[type]:
    """Return `Debiaser` subclasses."""


@hookspec
def tokcompress_register_graph_builders() -> list[type]:
    """Return `GraphBuilder` subclasses."""


@hookspec
def tokcompress_register_selectors() -> list[type]:
    """Return `Selector` subclasses."""


@hookspec
def tokcompress_register_mergers() -> list[type]:
    """Return `Merger` subclasses (optional merge step after selection)."""


@hookspec
def tokcompress_register_placements() -> list[type]:
    """Return `tokcompress.placement.Placement` subclasses (the ``apply`` block of specs)."""


@hookspec
def tokcompress_register_presets() -> list[Path]:
    """Return YAML/JSON preset files or directories of them; a preset's name is its file stem."""


@hookspec
def tokcompress_register_profiles() -> list[Path]:
    """Return positional-bias profile files (``.safetensors`` with a ``.json`` beside) or directories."""


@hookspec
def tokcompress_register_suites() -> list[Path]:
    """Return ablation-suite YAML files or directories of them; a suite's name is its file stem."""


@hookspec
def tokcompress_register_commands() -> list[type]:
    """Return `tokcompress.command.Command` subclasses (``tokcompress`` subcommands)."""


@hookspec
def tokcompress_register_model_sources() -> list[type]:
    """Return `tokcompress.sources.ModelSource` subclasses (named local models, e.g. a shipped one)."""


@hookspec
def tokcompress_register_model_adapters() -> list[type]:
    """Return model adapter classes for the transformers integration."""


@hookspec
def tokcompress_register_metrics() -> list[type]:
    """Return `tokcompress.study.metrics.Metric` subclasses (ablation-study metrics)."""


@hookspec
def tokcompress_register_datasets() -> list[type]:
    """Return `tokcompress.study.datasets.Dataset` subclasses (ablation-study sample sources)."""

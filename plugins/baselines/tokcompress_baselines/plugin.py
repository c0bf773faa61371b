"""The baselines plugin's hooks: DART's, VisionZip's and pooling's stages and every baseline's presets."""

from __future__ import annotations

from pathlib import Path

from tokcompress.hookspecs import hookimpl

from .dart import DartPivotSelector
from .pool import PoolMerger, PoolSelector
from .visionzip import VisionZipSelector

PRESETS = Path(__file__).parent / "data" / "presets"


@hookimpl
def tokcompress_register_selectors():
    return [DartPivotSelector, VisionZipSelector, PoolSelector]


@hookimpl
def tokcompress_register_mergers():
    return [PoolMerger]


@hookimpl
def tokcompress_register_presets():
    return [PRESETS]

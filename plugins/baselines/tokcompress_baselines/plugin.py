"""The baselines plugin's hooks: DART's and VisionZip's selectors and every baseline's presets."""

from __future__ import annotations

from pathlib import Path

from tokcompress.hookspecs import hookimpl

from .dart import DartPivotSelector
from .visionzip import VisionZipSelector

PRESETS = Path(__file__).parent / "data" / "presets"


@hookimpl
def tokcompress_register_selectors():
    return [DartPivotSelector, VisionZipSelector]


@hookimpl
def tokcompress_register_presets():
    return [PRESETS]

"""Named presets, ablation suites and positional-bias profiles, shipped as package data.

Registered through the ``tokcompress`` entry point ``registry``, the same hook a third-party
plugin uses to ship presets of its own.
"""

from __future__ import annotations

from pathlib import Path

from tokcompress.hookspecs import hookimpl

ROOT = Path(__file__).parent
PRESETS = ROOT / "presets"
PROFILES = ROOT / "profiles"
SUITES = ROOT / "suites"


@hookimpl
def tokcompress_register_presets():
    return [PRESETS]


@hookimpl
def tokcompress_register_profiles():
    return [PROFILES] if PROFILES.is_dir() else []

"""Ablation suites that compare methods from several plugins, registered through the ``tokcompress``
entry point ``registry`` (the hook a third party uses to ship suites of its own).

Presets and profiles are registered by the plugin that provides their components (D2Pruner's in
``tokcompress-d2pruner``, the baselines' in ``tokcompress-baselines``), so installing a method
brings its named configurations with it.
"""

from __future__ import annotations

from pathlib import Path

from tokcompress.hookspecs import hookimpl

SUITES = Path(__file__).parent / "suites"


@hookimpl
def tokcompress_register_suites():
    return [SUITES]

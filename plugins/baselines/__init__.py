"""tokcompress_baselines: the method-specific parts of the baselines D2Pruner is compared with.

Generic parts live in the core (``maxmin``, ``dpp``, ``text_relevance``, ``contextual``, ``topk``,
``key_norm``); this plugin adds DART's pivot selector and VisionZip's dominant + contextual
selection. The presets (``fastv``, ``dart``, ``divprune``, ``cdpruner``, ``visionzip``, ``random``,
``uniform``) are in ``registry/presets``; `budgets` gives the reference implementations' token counts.
"""

from __future__ import annotations

from tokcompress.hookspecs import hookimpl

from .dart import DartPivotSelector
from .visionzip import VisionZipSelector


@hookimpl
def tokcompress_register_selectors():
    return [DartPivotSelector, VisionZipSelector]

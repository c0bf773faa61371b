"""tokcompress_baselines: the method-specific parts of the baselines D2Pruner is compared with.

Generic parts live in the core (``maxmin``, ``dpp``, ``text_relevance``, ``contextual``, ``topk``,
``key_norm``); this plugin adds DART's pivot selector, VisionZip's dominant + contextual
selection and the ``pool`` control's selector and merger (2-D average pooling to the budget), and
registers the presets of every baseline (``fastv``, ``dart``, ``divprune``, ``cdpruner``,
``visionzip``, ``random``, ``uniform``, ``pool``; `tokcompress_baselines.plugin`). `budgets`
gives the reference implementations' token counts.
"""

from __future__ import annotations

from .dart import DartPivotSelector
from .pool import PoolMerger, PoolSelector
from .visionzip import VisionZipSelector

__all__ = ["DartPivotSelector", "VisionZipSelector", "PoolSelector", "PoolMerger"]

"""Which transformers releases the integration supports: it reads model internals that move between minors."""

from __future__ import annotations

import warnings

__all__ = ["TESTED_TRANSFORMERS", "check_transformers_version"]

TESTED_TRANSFORMERS = "5.23."
"""The transformers series the integration tests run against."""


def check_transformers_version() -> None:
    """Warn when the installed transformers is not the tested series (hooks read model internals)."""
    import transformers

    if not transformers.__version__.startswith(TESTED_TRANSFORMERS):
        warnings.warn(
            f"tokcompress.attach is tested with transformers {TESTED_TRANSFORMERS}x, found {transformers.__version__}; "
            "the hooks read model internals that change between minor releases",
            stacklevel=3,
        )

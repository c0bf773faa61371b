"""Which transformers releases the integration supports: it reads model internals that move between minors."""

from __future__ import annotations

from typing import Any

from ..errors import InputError

__all__ = ["SUPPORTED_TRANSFORMERS", "check_transformers_version"]

SUPPORTED_TRANSFORMERS = ">=5.14,<5.26"
"""transformers releases the hooks are tested on: `make test` runs tests/hf at both ends (5.14.x and 5.25.x).
5.14 is the first with per-layer mask sizing (``create_causal_mask(layer_idx=...)``), which `masks` relies on."""


def check_transformers_version(adapter: Any = None) -> None:
    """Refuse a transformers release outside the tested range (library-wide, then the adapter's own).

    The hooks read model internals that move between minor releases; an untested release could give
    wrong outputs instead of an error, so it is an error naming the range.
    """
    import transformers
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    found = Version(transformers.__version__)
    release = Version(".".join(map(str, found.release)))  # 5.26.0.dev0 counts as 5.26.0
    if release not in SpecifierSet(SUPPORTED_TRANSFORMERS):
        raise InputError(f"tokcompress.attach supports transformers {SUPPORTED_TRANSFORMERS}, found "
                         f"{transformers.__version__}; install a release in that range")
    extra = getattr(adapter, "transformers_versions", "")
    if extra and release not in SpecifierSet(extra):
        raise InputError(f"the {adapter.family} adapter supports transformers {extra} (within "
                         f"{SUPPORTED_TRANSFORMERS}), found {transformers.__version__}: {adapter.transformers_reason}")

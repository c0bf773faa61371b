"""The plugin manager, built once and cached: entry points of group ``tokcompress`` are the only way in.

Built-in components are entry points of the ``tokcompress`` distribution itself, so they travel the
same path as a third party's, and load first. ``TOKCOMPRESS_DISABLE_PLUGIN_AUTOLOAD=1`` skips every
other distribution (hermetic tests, debugging). Guarantees (docs/reliability.md): an entry-point
name declared by two distributions is a `PluginError` naming both, whatever the install order, so
no third party can replace a built-in; a plugin that fails to import (even by ``sys.exit``) is
skipped with a `PluginLoadWarning` naming it, and the rest keep working.
"""

from __future__ import annotations

import functools
import os
import warnings
from importlib.metadata import EntryPoint, entry_points

import pluggy

from . import hookspecs
from .errors import PluginError, shorten

__all__ = [
    "AUTOLOAD_ENV",
    "BUILTIN_DISTRIBUTION",
    "PluginLoadWarning",
    "get_plugin_manager",
    "new_plugin_manager",
    "PluginManager",
    "reset",
]

AUTOLOAD_ENV = "TOKCOMPRESS_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_DISTRIBUTION = "tokcompress"
IN_PROCESS = "registered in process"


class PluginLoadWarning(UserWarning):
    """A plugin entry point could not be imported; it was skipped."""


def _autoload_disabled() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _distribution(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "<unknown>"


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus the distribution each plugin came from (for messages and listings)."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.distributions: dict[str, str] = {}  # plugin name -> distribution name

    def provider(self, plugin_name: str) -> str:
        """``"plugin (distribution)"``."""
        return f"{plugin_name} ({self.distributions.get(plugin_name, IN_PROCESS)})"


def _entry_points(skip_third_party: bool) -> list[EntryPoint]:
    """Entry points to load, built-ins first; any name declared by two distributions is a `PluginError`.

    Checked over the whole set before anything loads, so the outcome never depends on install order or
    on how distribution names sort: a third party can never take a built-in's name (``core``, ``hf``...).
    """
    by_name: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=hookspecs.PROJECT):
        if skip_third_party and _distribution(ep) != BUILTIN_DISTRIBUTION:
            continue
        same = by_name.setdefault(ep.name, [])
        if not any(_distribution(o) == _distribution(ep) and o.value == ep.value for o in same):
            same.append(ep)
    for name, eps in sorted(by_name.items()):
        if len(eps) > 1:
            eps.sort(key=lambda e: (_distribution(e) != BUILTIN_DISTRIBUTION, _distribution(e), e.value))
            owners = " and ".join(f"{e.value} ({_distribution(e)})" for e in eps)
            builtin = " (a built-in name, which no other distribution may use)" if any(
                _distribution(e) == BUILTIN_DISTRIBUTION for e in eps) else ""
            raise PluginError(
                f"tokcompress: plugin name {name!r}{builtin} is declared by {owners}; uninstall or rename "
                f"the third-party one (or set {AUTOLOAD_ENV}=1 to load built-ins only)"
            )
    return sorted(
        (eps[0] for eps in by_name.values()),
        key=lambda e: (_distribution(e) != BUILTIN_DISTRIBUTION, _distribution(e), e.name),
    )


def new_plugin_manager(extra_plugins: tuple[object, ...] = ()) -> PluginManager:
    """A fresh manager: entry-point plugins (built-ins first), then `extra_plugins` (tests, notebooks)."""
    pm = PluginManager()
    for ep in _entry_points(_autoload_disabled()):
        dist = _distribution(ep)
        try:
            plugin = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # ImportError, SystemExit at import...: one plugin must not end every command
            warnings.warn(
                f"tokcompress: plugin {ep.name!r} ({ep.value}) from distribution {dist} failed to import "
                f"and was skipped: {type(exc).__name__}: {shorten(str(exc), quote=False)}",
                PluginLoadWarning,
                stacklevel=2,
            )
            continue
        try:
            pm.register(plugin, name=ep.name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise PluginError(
                f"tokcompress: plugin {ep.name!r} ({ep.value}) from distribution {dist} cannot be registered: "
                f"{shorten(str(exc), quote=False)}"
            ) from None
        pm.distributions[ep.name] = dist
    for plugin in extra_plugins:
        pm.register(plugin)
    return pm


@functools.cache
def get_plugin_manager() -> PluginManager:
    """The process-wide manager, built on first use."""
    return new_plugin_manager()


def reset() -> None:
    """Forget the cached manager; everything derived from it is keyed on the manager and rebuilt too
    (tests, after installing a plugin)."""
    get_plugin_manager.cache_clear()

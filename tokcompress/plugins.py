"""The plugin manager, built once and cached: entry points of group ``tokcompress`` are the only way in.

Built-in components are entry points of the ``tokcompress`` distribution itself, so they travel the
same path as a third party's. ``TOKCOMPRESS_DISABLE_PLUGIN_AUTOLOAD=1`` skips every other
distribution (hermetic tests, debugging); a third-party plugin that fails to import is skipped with
a warning naming it, and the rest keep working.
"""

from __future__ import annotations

import functools
import os
import warnings
from importlib.metadata import EntryPoint, entry_points

import pluggy

from . import hookspecs

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


def new_plugin_manager(extra_plugins: tuple[object, ...] = ()) -> PluginManager:
    """A fresh manager: entry-point plugins, then `extra_plugins` (tests, notebooks)."""
    pm = PluginManager()
    skip_third_party = _autoload_disabled()
    for ep in sorted(entry_points(group=hookspecs.PROJECT), key=lambda e: (_distribution(e), e.name)):
        dist = _distribution(ep)
        if skip_third_party and dist != BUILTIN_DISTRIBUTION:
            continue
        if pm.has_plugin(ep.name):
            warnings.warn(
                f"tokcompress: entry point {ep.name!r} of {dist} has the same name as one of "
                f"{pm.distributions[ep.name]}; skipped",
                PluginLoadWarning,
                stacklevel=2,
            )
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party plugin must not take the library down
            warnings.warn(
                f"tokcompress: plugin {ep.name!r} ({ep.value}) from distribution {dist} failed to import "
                f"and was skipped: {type(exc).__name__}: {exc}",
                PluginLoadWarning,
                stacklevel=2,
            )
            continue
        pm.register(plugin, name=ep.name)
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

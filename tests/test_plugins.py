"""Plugin discovery: built-ins and third parties through the same entry points; conflicts are loud."""

from __future__ import annotations

import warnings

import pytest
import torch

import tokcompress
from tokcompress.catalog import get_catalog
from tokcompress.errors import PluginError
from tokcompress.plugins import AUTOLOAD_ENV, PluginLoadWarning, get_plugin_manager

THIRD_PARTY_SELECTOR = """
    import torch
    from tokcompress.component import Params
    from tokcompress.hookspecs import hookimpl
    from tokcompress.selectors import Selector

    class EveryOther(Selector):
        '''Keeps tokens 0, 2, 4, ... (a throwaway third-party selector).'''
        name = "every_other"

        def needs_scores(self):
            return False

        class Params(Params):
            offset: int = 0

        def select(self, tokens, scores, graph, keep):
            idx = torch.arange(keep) * 2 + self.params.offset
            return idx.expand(tokens.batch_size, -1).clone()

    @hookimpl
    def tokcompress_register_selectors():
        return [EveryOther]
"""


def test_builtins_come_from_entry_points_of_our_distribution():
    pm = get_plugin_manager()
    assert pm.distributions["core"] == "tokcompress"
    assert pm.distributions["d2pruner"] == "tokcompress-d2pruner"  # plugins of this repository are distributions too
    catalog = get_catalog()
    assert catalog.components["selector"]["topk"].provider == "core (tokcompress)"
    assert catalog.components["selector"]["greedy_mis"].provider == "d2pruner (tokcompress-d2pruner)"
    assert catalog.presets["fastv"].provider == "baselines (tokcompress-baselines)"
    assert catalog.entries("suite")["tiny-cpu"].provider == "registry (tokcompress-registry)"


def test_plugin_manager_is_built_once_and_cached():
    assert get_plugin_manager() is get_plugin_manager()
    assert get_catalog() is get_catalog()
    before = get_plugin_manager()
    tokcompress.plugins.reset()
    assert get_plugin_manager() is not before


def test_third_party_selector_is_discovered_and_usable(install_plugin):
    install_plugin("tc-every-other", "tc_every_other", THIRD_PARTY_SELECTOR)
    entry = get_catalog().components["selector"]["every_other"]
    assert entry.provider == "tc_every_other (tc-every-other)"
    pruner = tokcompress.build_pruner({"selector": {"name": "every_other", "offset": 1}})
    keep = pruner.select(tokcompress.VisualTokens(torch.randn(2, 10, 4)), keep=3)
    assert keep.tolist() == [[1, 3, 5], [1, 3, 5]]


def test_third_party_presets_are_registered(install_plugin):
    install_plugin(
        "tc-presets",
        "tc_presets",
        """
        from pathlib import Path
        from tokcompress.hookspecs import hookimpl

        @hookimpl
        def tokcompress_register_presets():
            return [Path(__file__).parent / "my_presets"]
        """,
        files={"my_presets/odd-topk.yaml": "scorer: feature_norm\nselector: topk\napply: {placement: pre_llm}\n"},
    )
    spec = tokcompress.load_spec("odd-topk")
    assert spec.name == "odd-topk" and spec.selector.name == "topk"
    assert get_catalog().presets["odd-topk"].provider == "tc_presets (tc-presets)"


def test_duplicate_component_name_names_both_providers(install_plugin):
    install_plugin(
        "tc-clash",
        "tc_clash",
        """
        from tokcompress.hookspecs import hookimpl
        from tokcompress.selectors import TopKSelector

        class MyTopK(TopKSelector):
            name = "topk"

        @hookimpl
        def tokcompress_register_selectors():
            return [MyTopK]
        """,
    )
    with pytest.raises(PluginError) as err:
        get_catalog()
    msg = str(err.value)
    assert "duplicate selector name 'topk'" in msg
    assert "core (tokcompress)" in msg and "tc_clash (tc-clash)" in msg


def test_broken_third_party_plugin_warns_and_the_rest_work(install_plugin):
    install_plugin("tc-broken", "tc_broken", "import does_not_exist_anywhere\n")
    with pytest.warns(PluginLoadWarning, match=r"plugin 'tc_broken' .*tc-broken failed to import.*does_not_exist"):
        catalog = get_catalog()
    assert "topk" in catalog.components["selector"]


def test_env_var_disables_third_party_autoload_but_keeps_builtins(install_plugin, monkeypatch):
    install_plugin("tc-every-other", "tc_every_other", THIRD_PARTY_SELECTOR)
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    tokcompress.plugins.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        catalog = get_catalog()
    assert "every_other" not in catalog.components["selector"]
    assert "topk" in catalog.components["selector"]
    assert "tc_every_other" not in get_plugin_manager().distributions


def test_registering_a_non_component_is_refused(install_plugin):
    install_plugin(
        "tc-bad",
        "tc_bad",
        """
        from tokcompress.hookspecs import hookimpl

        class NotASelector:
            name = "nope"

        @hookimpl
        def tokcompress_register_selectors():
            return [NotASelector]
        """,
    )
    with pytest.raises(PluginError, match=r"tc_bad \(tc-bad\) registered .*NotASelector.* not a Selector subclass"):
        get_catalog()


def test_param_called_name_is_refused(install_plugin):
    install_plugin(
        "tc-name",
        "tc_name",
        """
        from tokcompress.component import Params
        from tokcompress.hookspecs import hookimpl
        from tokcompress.selectors import TopKSelector

        class Named(TopKSelector):
            name = "named"
            class Params(Params):
                name: str = "x"

        @hookimpl
        def tokcompress_register_selectors():
            return [Named]
        """,
    )
    with pytest.raises(PluginError, match="parameter called 'name'"):
        get_catalog()

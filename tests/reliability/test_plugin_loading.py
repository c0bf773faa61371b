"""Plugin loading guarantees: built-in names cannot be taken, duplicate names are loud whatever the
install order, a plugin that exits at import is skipped with a warning, and a failing hook is an
error naming the plugin and its distribution (docs/reliability.md)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import tokcompress
from tokcompress import cli
from tokcompress.catalog import get_catalog
from tokcompress.errors import PluginError
from tokcompress.plugins import AUTOLOAD_ENV, PluginLoadWarning, get_plugin_manager

CLAIMS_TOPK = """
    from tokcompress.hookspecs import hookimpl
    from tokcompress.selectors import TopKSelector

    class Hijacked(TopKSelector):
        name = "topk"

    @hookimpl
    def tokcompress_register_selectors():
        return [Hijacked]
"""

HARMLESS = """
    from tokcompress.hookspecs import hookimpl

    @hookimpl
    def tokcompress_register_presets():
        return []
"""


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install(dist, {entry_point_name: "module[:attr]"}, {module: source})``: a dist-info folder on sys.path."""

    def _install(dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
        root = tmp_path / f"site-{dist}"
        root.mkdir()
        for module, source in modules.items():
            (root / f"{module}.py").write_text(textwrap.dedent(source))
            monkeypatch.delitem(sys.modules, module, raising=False)
        info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[tokcompress]\n{lines}")
        monkeypatch.syspath_prepend(str(root))
        tokcompress.plugins.reset()
        return root

    return _install


# -- names ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dist", ["aaa-hijack", "zzz-hijack"])  # sorts before and after "tokcompress"
@pytest.mark.parametrize("builtin", ["core", "study", "hf"])
def test_a_third_party_can_never_take_a_builtin_name(install, dist, builtin):
    install(dist, {builtin: "hijack_mod"}, {"hijack_mod": CLAIMS_TOPK})
    with pytest.raises(PluginError) as err:
        get_plugin_manager()
    msg = str(err.value)
    assert f"plugin name {builtin!r} (a built-in name" in msg
    assert "(tokcompress)" in msg and f"hijack_mod ({dist})" in msg
    assert "hijack_mod" not in sys.modules  # refused before anything of it was imported


@pytest.mark.parametrize("first, second", [("dist-a", "dist-b"), ("dist-b", "dist-a")])
def test_a_name_declared_by_two_third_parties_names_both_whatever_the_install_order(install, first, second):
    install(first, {"shared": f"{first.replace('-', '_')}_mod"}, {f"{first.replace('-', '_')}_mod": HARMLESS})
    install(second, {"shared": f"{second.replace('-', '_')}_mod"}, {f"{second.replace('-', '_')}_mod": HARMLESS})
    with pytest.raises(PluginError) as err:
        get_catalog()
    msg = str(err.value)
    assert "plugin name 'shared' is declared by" in msg
    assert "dist_a_mod (dist-a) and dist_b_mod (dist-b)" in msg  # the same sentence in both orders
    assert AUTOLOAD_ENV in msg


def test_the_autoload_switch_ignores_a_hijacker_and_keeps_the_builtins(install, monkeypatch):
    install("aaa-hijack", {"core": "hijack_mod"}, {"hijack_mod": CLAIMS_TOPK})
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    tokcompress.plugins.reset()
    entry = get_catalog().components["selector"]["topk"]
    assert entry.provider == "core (tokcompress)" and entry.cls.__module__.startswith("tokcompress.")


def test_builtins_register_before_any_third_party(install):
    install("aaa-first", {"aaa_first": "aaa_first"}, {"aaa_first": HARMLESS})
    names = [name for name, _ in get_plugin_manager().list_name_plugin()]
    builtins = [n for n in names if get_plugin_manager().distributions.get(n) == "tokcompress"]
    assert names[: len(builtins)] == builtins and names.index("aaa_first") == len(builtins)


def test_a_third_party_entry_point_reusing_a_builtin_module_is_an_error(install):
    install("tc-again", {"again": "tokcompress.builtin"}, {})
    with pytest.raises(PluginError, match=r"plugin 'again' \(tokcompress.builtin\) from distribution tc-again cannot be registered"):
        get_plugin_manager()


# -- import failures ----------------------------------------------------------------------------------
@pytest.mark.parametrize("body, kind", [
    ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
    ("raise SystemExit('bye')\n", "SystemExit: bye"),
    ("import does_not_exist_anywhere\n", "ModuleNotFoundError"),
    ("raise RuntimeError('x' * 100000)\n", "RuntimeError: xxx"),
])
def test_a_plugin_that_fails_or_exits_at_import_is_skipped_with_a_warning(install, body, kind):
    install("tc-exits", {"tc_exits": "tc_exits"}, {"tc_exits": body})
    with pytest.warns(PluginLoadWarning) as record:
        catalog = get_catalog()
    (warning,) = [w for w in record if issubclass(w.category, PluginLoadWarning)]
    msg = str(warning.message)
    assert "plugin 'tc_exits' (tc_exits) from distribution tc-exits failed to import and was skipped" in msg
    assert kind in msg and len(msg) < 600  # the exception text is bounded
    assert "topk" in catalog.components["selector"]  # everything else still works
    assert "tc_exits" not in get_plugin_manager().distributions


def test_a_plugin_that_exits_at_import_does_not_end_a_command(install, capsys):
    install("tc-exits", {"tc_exits": "tc_exits"}, {"tc_exits": "import sys\nsys.exit(0)\n"})
    with pytest.warns(PluginLoadWarning, match="SystemExit"):
        assert cli.main(["validate", "fastv"]) == 0
    assert "ok: fastv" in capsys.readouterr().out


def test_keyboard_interrupt_at_import_is_not_swallowed(install):
    install("tc-interrupt", {"tc_interrupt": "tc_interrupt"}, {"tc_interrupt": "raise KeyboardInterrupt\n"})
    with pytest.raises(KeyboardInterrupt):
        get_plugin_manager()


# -- hooks ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, kind", [
    ("raise RuntimeError('registry offline')", "RuntimeError: registry offline"),
    ("import sys; sys.exit(1)", "SystemExit: 1"),
    ("return 42", "TypeError: 'int' object is not iterable"),
])
def test_a_failing_hook_is_an_error_naming_plugin_distribution_and_hook(install, body, kind):
    source = f"""
        from tokcompress.hookspecs import hookimpl

        @hookimpl
        def tokcompress_register_scorers():
            {body}
    """
    install("tc-hook", {"tc_hook": "tc_hook"}, {"tc_hook": source})
    with pytest.raises(PluginError) as err:
        get_catalog()
    msg = str(err.value)
    assert "plugin tc_hook (tc-hook): hook tokcompress_register_scorers failed" in msg and kind in msg


def test_a_failing_hook_gives_a_cli_error_not_a_traceback(install, capsys):
    install("tc-hook", {"tc_hook": "tc_hook"}, {"tc_hook": """
        from tokcompress.hookspecs import hookimpl

        @hookimpl
        def tokcompress_register_metrics():
            raise ValueError("boom")
    """})
    assert cli.main(["plugins", "--json"]) == 2
    err = capsys.readouterr().err
    assert "error: plugin tc_hook (tc-hook): hook tokcompress_register_metrics failed: ValueError: boom" in err


def test_a_hookimpl_with_a_wrong_signature_is_an_error_naming_the_plugin(install):
    install("tc-sig", {"tc_sig": "tc_sig"}, {"tc_sig": """
        from tokcompress.hookspecs import hookimpl

        @hookimpl
        def tokcompress_register_selectors(unexpected_argument):
            return []
    """})
    with pytest.raises(PluginError, match=r"plugin 'tc_sig' \(tc_sig\) from distribution tc-sig cannot be registered"):
        get_plugin_manager()

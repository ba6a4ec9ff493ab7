"""Plugins are found through real entry points of installed distributions."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.builtins.sleep import Sleep
from runner.config import ConfigError, load_config
from runner.plugin import Check, Service
from runner.registry import (
    Group,
    PluginConflictError,
    PluginLoadError,
    Registry,
    UnknownPluginError,
)
from runner.testing import run_check


def test_builtins_come_through_the_same_entry_points() -> None:
    registry = Registry.discover()
    for name in ("http-status", "page-title", "sleep", "echo-listener", "file-server"):
        entry = registry.entry(name)
        assert entry.distribution == "runner-daemon"
    assert registry.load("sleep") is Sleep
    assert registry.entry("echo-listener").kind == "service"


async def test_a_third_party_distribution_is_discovered_and_runs(testplugins: Path) -> None:
    registry = Registry.discover()
    entry = registry.entry("raises")
    assert (entry.distribution, entry.version) == ("runner-testplugins", "0.0.1")
    plugin = registry.load("raises")
    assert issubclass(plugin, Check)
    result = await run_check(plugin, {"message": "from a real entry point"})
    assert result.status.value == "error"
    assert result.message == "from a real entry point"
    assert issubclass(registry.load("flaky-service"), Service)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        pytest.param(
            "broken-import",
            "importing 'runner_testplugins.broken' failed: RuntimeError: this module is broken",
            id="raises-on-import",
        ),
        pytest.param(
            "missing-module",
            "module 'runner_testplugins_not_installed' is not installed",
            id="module-missing",
        ),
        pytest.param(
            "not-a-plugin",
            "is <function not_a_plugin",
            id="not-a-class",
        ),
        pytest.param(
            "bad-options",
            "BadOptions.Options is <class 'dict'>, not a pydantic model class",
            id="options-not-pydantic",
        ),
        pytest.param("abstract", "Abstract does not implement run", id="abstract-class"),
    ],
)
def test_broken_plugins_name_distribution_entry_point_and_reason(
    testplugins: Path, name: str, reason: str
) -> None:
    registry = Registry.discover()
    with pytest.raises(PluginLoadError) as info:
        registry.load(name)
    message = str(info.value)
    assert f"plugin {name!r}" in message
    assert "from runner-testplugins 0.0.1" in message
    assert reason in message
    # ...and the others still load.
    assert registry.load("sleep") is Sleep


def test_unknown_plugin_lists_installed_ones() -> None:
    with pytest.raises(UnknownPluginError) as info:
        Registry.discover().load("nope")
    message = str(info.value)
    assert message.startswith("unknown plugin 'nope'; installed plugins: ")
    for name in ("echo-listener", "file-server", "http-status", "page-title", "sleep"):
        assert name in message


def test_two_distributions_registering_one_name_is_an_error_naming_both(
    conflicting_plugins_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.syspath_prepend(str(conflicting_plugins_path))
    registry = Registry.discover()
    with pytest.raises(PluginConflictError) as info:
        registry.load("sleep")
    message = str(info.value)
    assert "plugin name 'sleep' is registered by" in message
    assert "runner-daemon 0.1.0 (runner.builtins.sleep:Sleep)" in message
    assert "runner-testplugins-conflict 0.0.2 (runner_testplugins_conflict:OtherSleep)" in message
    # Other plugins are unaffected, and a config using the name says why it can't.
    assert registry.load("http-status").__name__ == "HttpStatus"
    config = tmp_path / "c.yaml"
    config.write_text("jobs:\n  - {name: nap, plugin: sleep}\n")
    with pytest.raises(ConfigError, match="plugin name 'sleep' is registered by") as config_error:
        load_config(config)
    assert "runner-testplugins-conflict 0.0.2" in str(config_error.value)


def test_another_entry_point_group_is_one_call_with_its_own_base_and_words(
    testplugins: Path,
) -> None:
    from runner_testplugins.plugins import Gear, Widget

    widgets = Registry.discover(Group("runner.tests.widgets", (Widget,), "widget"))
    assert widgets.names() == ["gear", "sleep-as-widget"]
    assert widgets.load("gear") is Gear
    assert widgets.entry("gear").kind == "widget"
    with pytest.raises(PluginLoadError) as wrong_base:
        widgets.load("sleep-as-widget")
    assert str(wrong_base.value).startswith("widget 'sleep-as-widget' (entry point")
    assert "not a subclass of runner_testplugins.plugins.Widget" in str(wrong_base.value)
    with pytest.raises(UnknownPluginError) as unknown:
        widgets.entry("cog")
    assert "unknown widget 'cog'; installed widgets: gear, sleep-as-widget" in str(unknown.value)
    # The groups do not mix.
    assert "gear" not in Registry.discover().names()

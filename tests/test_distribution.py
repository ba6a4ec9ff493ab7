"""The distribution is runner-daemon ("runner" on the package index is an
unrelated project); the import package, the command and the entry point
groups stay runner."""

from __future__ import annotations

import tomllib
from importlib.metadata import distribution, entry_points
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import runner
from helpers import run_cli

ROOT = Path(__file__).parents[1]
PLUGIN_MANIFESTS = sorted(ROOT.glob("plugins/*/pyproject.toml"))


def test_installed_as_runner_daemon_with_the_runner_command_and_groups() -> None:
    dist = distribution("runner-daemon")
    assert dist.version == runner.__version__ != "0+unknown"
    assert runner.DISTRIBUTION == "runner-daemon"
    scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    assert scripts == {"runner": "runner.cli:main"}
    for ep in entry_points(group="runner.plugins"):
        if ep.value.startswith("runner.builtins."):
            assert ep.dist is not None and ep.dist.name == "runner-daemon"
    version = run_cli("--version")
    assert version.stdout.strip() == f"runner {runner.__version__}"


@pytest.mark.parametrize(
    "manifest", PLUGIN_MANIFESTS, ids=[m.parent.name for m in PLUGIN_MANIFESTS]
)
def test_plugin_distributions_depend_on_runner_daemon(manifest: Path) -> None:
    project = tomllib.loads(manifest.read_text())["project"]
    names = {Requirement(r).name for r in project["dependencies"]}
    assert "runner-daemon" in names
    assert "runner" not in names  # that name installs an unrelated project

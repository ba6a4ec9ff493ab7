"""The plugin distributions in plugins/, each tested as its users get it:
built and installed on its own, then its own test suite run from its folder.

Nothing of them is installed into the development environment, so there
`runner plugins` lists exactly what runner ships. Each is installed here
with pip into a temporary folder (``--target``, no dependencies: the
environment already has runner and the plugins' other dependencies, see the
``test`` extra) and made visible through ``PYTHONPATH`` to a pytest run of
its own tests, which also start ``runner`` subprocesses that find it through
its entry points as any installed plugin is found.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import pip_install_alone, run_cli

PLUGINS = Path(__file__).parents[1] / "plugins"
DISTRIBUTIONS = sorted(p.parent for p in PLUGINS.glob("*/pyproject.toml"))


def install_alone(source_dir: Path, work: Path) -> tuple[Path, Path]:
    """Copy a distribution's folder to ``work`` and pip install it into a
    folder of its own; return (the copy, the install folder)."""
    copy = work / source_dir.name
    shutil.copytree(
        source_dir,
        copy,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"),
    )
    site = work / "site"
    pip_install_alone(copy, site)
    return copy, site


@pytest.mark.parametrize("source", DISTRIBUTIONS, ids=[d.name for d in DISTRIBUTIONS])
def test_plugin_distribution_passes_its_own_tests(source: Path, tmp_path: Path) -> None:
    copy, site = install_alone(source, tmp_path)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout.splitlines()[-1]


def test_the_development_environment_lists_only_what_runner_ships() -> None:
    listing = run_cli("plugins")
    assert listing.returncode == 0, listing.stdout + listing.stderr
    names = [line.split()[0] for line in listing.stdout.splitlines() if not line.startswith(" ")]
    assert names == [
        "browser-steps",
        "dns",
        "echo-listener",
        "file-server",
        "heartbeat",
        "http-status",
        "page-title",
        "sleep",
        "tcp",
        "apprise",
        "log",
        "webhook",
    ]

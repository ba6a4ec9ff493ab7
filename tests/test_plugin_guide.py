"""docs/plugins.md, run: its code blocks are the files of an example
distribution (a block whose first line is ``# path`` is that file). The test
writes them out, installs the distribution with pip into a folder of its own,
runs the distribution's own tests, and checks its example config, so the
guide cannot drift from the code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import pip_install_alone, run_cli

GUIDE = Path(__file__).parents[1] / "docs" / "plugins.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PATH_LINE = re.compile(r"#\s*([\w./-]+\.(?:py|toml|yaml))\s*$")


def guide_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced code block of the guide."""
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(GUIDE.read_text())]


def guide_files() -> dict[str, str]:
    """The blocks that are files of the example distribution, by path."""
    files = {}
    for _, text in guide_blocks():
        first = PATH_LINE.fullmatch(text.split("\n", 1)[0])
        if first:
            assert first.group(1) not in files, f"{first.group(1)} appears twice in the guide"
            files[first.group(1)] = text
    return files


def test_every_python_fragment_of_the_guide_is_valid_python() -> None:
    """The fragments that are not files (shared resources) at least compile."""
    fragments = [
        text
        for language, text in guide_blocks()
        if language == "python" and not PATH_LINE.fullmatch(text.split("\n", 1)[0])
    ]
    assert fragments
    for text in fragments:
        compile("async def _fragment():\n" + textwrap.indent(text, "    "), GUIDE.name, "exec")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The example distribution written from the guide and installed into a
    folder of its own; (its folder, the environment that sees it)."""
    root = tmp_path_factory.mktemp("guide")
    source = root / "runner-demo"
    files = guide_files()
    assert set(files) == {
        "pyproject.toml",
        "src/runner_demo/__init__.py",
        "src/runner_demo/file_age.py",
        "src/runner_demo/port_open.py",
        "src/runner_demo/clock.py",
        "src/runner_demo/desk_bell.py",
        "tests/test_demo.py",
        "config.yaml",
    }
    for path, text in files.items():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_text(text)
    site = root / "site"
    pip_install_alone(source, site)
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return source, {"PYTHONPATH": path}


def test_the_guide_distribution_passes_its_own_tests(demo: tuple[Path, dict[str, str]]) -> None:
    source, env = demo
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=source,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("6 passed")


def test_the_guide_config_is_valid_and_its_plugins_are_listed(
    demo: tuple[Path, dict[str, str]],
) -> None:
    source, env = demo
    check = run_cli("check", str(source / "config.yaml"), env=env)
    assert check.returncode == 0, check.stderr
    assert "nightly-backup  [file-age]  every 10m" in check.stdout
    listing = run_cli("plugins", env=env)
    assert listing.returncode == 0, listing.stdout
    for line in (
        "file-age  (runner-demo 0.1.0)  check",
        "port-open  (runner-demo 0.1.0)  check",
        "clock  (runner-demo 0.1.0)  service",
        "desk-bell  (runner-demo 0.1.0)  notifier",
    ):
        assert line in listing.stdout

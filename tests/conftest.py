from __future__ import annotations

import importlib
import os
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import local_http_server, pip_install_alone
from postgres import postgres_server, postgres_url  # noqa: F401

TESTS = Path(__file__).parent


def _install(source_dir: Path, work: Path) -> Path:
    """pip install a distribution from tests/ into a folder of its own; return it."""
    source = work / "src"
    shutil.copytree(source_dir, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = work / "site"
    pip_install_alone(source, target)
    return target


@pytest.fixture(autouse=True)
def _history_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """History is on by default and goes to the XDG state folder: keep every
    test's (and every daemon subprocess's) history in its own temporary folder."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)


@pytest.fixture(scope="session")
def testplugins_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install tests/testplugins for real (pip --target) into a folder of its own.

    Adding that folder to sys.path (or PYTHONPATH for a subprocess) makes its
    entry points visible to importlib.metadata exactly as an installed
    third-party plugin would be; nothing is monkeypatched.
    """
    return _install(TESTS / "testplugins", tmp_path_factory.mktemp("testplugins"))


@pytest.fixture(scope="session")
def conflicting_plugins_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/testplugins-conflict installed the same way: it registers 'sleep' again."""
    return _install(TESTS / "testplugins-conflict", tmp_path_factory.mktemp("conflict"))


@pytest.fixture
def testplugins(testplugins_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the test plugin distribution visible in this process and its children."""
    monkeypatch.syspath_prepend(str(testplugins_path))
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join(filter(None, [str(testplugins_path), os.environ.get("PYTHONPATH")])),
    )
    importlib.invalidate_caches()
    return testplugins_path


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a YAML config (dedented) to a file and return its path."""
    counter = iter(range(1_000_000))

    def write(text: str, name: str | None = None) -> Path:
        path = tmp_path / (name or f"config-{next(counter)}.yaml")
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


@pytest.fixture
def http_base() -> Iterator[str]:
    """Base URL of a local HTTP server with /ok, /error, /redirect and /slow/SECONDS."""
    with local_http_server() as url:
        yield url

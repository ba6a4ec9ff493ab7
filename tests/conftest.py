from __future__ import annotations

import importlib
import os
import shutil
import ssl
import subprocess
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Peer, local_http_server, pip_install_alone
from hostile_http import HostileServer
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


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        ["openssl", "req", "-x509", "-nodes", "-days", "1", *subject, *new_key, *files],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
async def start_hostile() -> AsyncIterator[Callable[..., Awaitable[HostileServer]]]:
    """Starts hostile servers (tests/hostile_http.py) and stops them after the test."""
    servers: list[HostileServer] = []

    async def start(**kwargs: Any) -> HostileServer:
        server = HostileServer(**kwargs)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def hostile(start_hostile: Callable[..., Awaitable[HostileServer]]) -> HostileServer:
    return await start_hostile()


@pytest.fixture
def peer() -> Iterator[Peer]:
    """A local HTTP server (helpers.Peer): a target for checks and a receiver for alerts."""
    p = Peer()
    try:
        yield p
    finally:
        p.close()

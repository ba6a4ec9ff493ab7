"""file-server against a real HTTP client on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pydantic
import pytest

from runner.builtins.file_server import FileServer, FileServerOptions
from runner.testing import running_service


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


async def test_serves_files_and_404s(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<title>hi</title>")
    async with running_service(FileServer, {"directory": str(tmp_path)}) as ready:
        assert ready["host"] == "127.0.0.1"
        base = f"http://127.0.0.1:{ready['port']}"
        status, body = await asyncio.to_thread(fetch, f"{base}/")
        assert (status, body) == (200, b"<title>hi</title>")
        status, _ = await asyncio.to_thread(fetch, f"{base}/missing.html")
        assert status == 404
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", ready["port"]), timeout=2):
        pass  # stopped: nothing listens any more


def test_directory_must_exist(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="is not a folder"):
        FileServerOptions(directory=str(tmp_path / "nope"))


async def test_port_taken_names_the_address(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with running_service(FileServer, {"directory": str(tmp_path), "port": port}):
                pass

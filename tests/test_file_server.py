"""file-server against a real HTTP client on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pydantic
import pytest
import structlog

from helpers import RunnerProcess
from runner.builtins.services.file_server import FileServer, FileServerOptions, _Server
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


def drop_with_reset(sock: socket.socket) -> None:
    """Close so that the kernel sends RST: the server's next send fails with ECONNRESET."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def drop_with_close(sock: socket.socket) -> None:
    """A plain close with unread data (what a browser does with a favicon it no longer
    wants): ECONNRESET or EPIPE on the server's next sends."""
    sock.close()


@pytest.mark.parametrize(
    "drop",
    [pytest.param(drop_with_reset, id="reset"), pytest.param(drop_with_close, id="close")],
)
def test_client_dropping_mid_response_is_logged_not_printed(
    drop: Callable[[socket.socket], None], tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """The daemon's output stays JSON when a client goes away mid-response.

    socketserver used to print a 30-line traceback to stderr, which under
    systemd went to the journal as plain text."""
    site = tmp_path / "site"
    site.mkdir()
    # Far more than the socket buffers hold, so the server is still sending when we go.
    (site / "big.bin").write_bytes(bytes(32 * 1024 * 1024))
    config = write_config(
        f"""
        jobs:
          - name: site
            plugin: file-server
            options:
              directory: {site}
        """
    )
    with RunnerProcess("serve", "--log-level", "debug", str(config)) as runner:
        (started,) = runner.wait_for(event="service.started", job="site")
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", started["port"]), timeout=5) as sock:
                sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert sock.recv(1024).startswith(b"HTTP/1.0 200")
                drop(sock)
        gone = runner.wait_for(event="file_server.client_gone", count=3)
        assert runner.stop() == 0
    assert {e["level"] for e in gone} == {"debug"}
    assert {e["job"] for e in gone} == {"site"}
    assert all(
        ("ConnectionResetError" in e["error"]) or ("BrokenPipeError" in e["error"]) for e in gone
    )
    for line in runner.raw_lines:
        assert isinstance(json.loads(line), dict), line
    assert "Traceback" not in runner.stderr and "Exception occurred" not in runner.stderr
    assert runner.stderr == ""


class _Broken(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        raise RuntimeError("a bug in the handler")


def test_a_failing_request_is_an_error_event_with_its_traceback(tmp_path: Path) -> None:
    """Anything but a vanished client is a bug worth an error event, structured."""
    log = structlog.get_logger("runner").bind(job="site", plugin="file-server")
    server = _Server(("127.0.0.1", 0), _Broken, log)
    with (
        server,
        structlog.testing.capture_logs() as events,
        socket.create_connection(server.server_address[:2], timeout=5) as client,
    ):
        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
        server.handle_request()  # accepts it and hands it to a thread
        assert client.recv(1024) == b""  # closed without an answer
    (event,) = [e for e in events if e["event"] == "file_server.request_failed"]
    assert event["log_level"] == "error"
    assert event["client"].startswith("127.0.0.1:")
    assert event["exc_info"] is True

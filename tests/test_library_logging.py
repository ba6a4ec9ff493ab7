"""Libraries that log through the standard logging module end up as JSON lines.

Without a handler, logging's last resort prints their warnings and errors to
stderr as plain text, which under systemd lands in the journal between the
daemon's JSON lines. aiohttp did that for every malformed request to the HTTP
endpoint: "Error handling request from 127.0.0.1" and a traceback.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import RunnerProcess, closed_port


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", id="bad-length"),
        pytest.param(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n", id="line-too-long"),
    ],
)
def test_malformed_requests_to_the_endpoint_are_json_events(
    request_bytes: bytes, write_config: Callable[..., Path]
) -> None:
    port = closed_port()
    config = write_config(
        f"""
        http:
          listen: 127.0.0.1:{port}
        jobs:
          - name: nap
            plugin: sleep
            interval: 1h
        """
    )
    with RunnerProcess("serve", str(config)) as runner:
        runner.wait_for(event="http.started")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(request_bytes)
            assert client.recv(1024).startswith(b"HTTP/1.0 400")
        (event,) = runner.wait_for(event="library.log")
        assert runner.stop() == 0
    assert event["level"] == "error"
    assert event["logger"] == "aiohttp.server"
    assert event["message"].startswith("Error handling request")
    assert event["exception"][0]["exc_type"] in ("BadHttpMessage", "LineTooLong")
    for line in runner.raw_lines:
        assert isinstance(json.loads(line), dict), line
    assert runner.stderr == ""


def test_python_warnings_are_json_events_not_text() -> None:
    """A plugin's "coroutine was never awaited" or a deprecation would
    otherwise be printed to stderr as text."""
    code = (
        "import warnings\n"
        "from runner.log import configure_logging\n"
        "configure_logging('json', 'info', own_stdout=True)\n"
        "warnings.warn('this API goes away', DeprecationWarning, stacklevel=1)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    (event,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert event["event"] == "library.log"
    assert event["logger"] == "py.warnings"
    assert "DeprecationWarning: this API goes away" in event["message"]

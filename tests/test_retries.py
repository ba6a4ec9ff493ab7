"""Retries inside a run: a dropped answer is tried again, the result says so, and
every attempt fits in the job's timeout."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from helpers import run_cli
from runner.model import Retry

WriteConfig = Callable[..., Path]


@pytest.fixture
def flaky() -> Iterator[tuple[str, list[int]]]:
    """A server answering 500, then 200, then 500, ...; yields its URL and the codes sent."""
    sent: list[int] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with lock:
                code = 500 if len(sent) % 2 == 0 or self.path == "/always-500" else 200
                sent.append(code)
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", sent
    finally:
        server.shutdown()
        server.server_close()


def finished(stdout: str) -> dict[str, dict[str, Any]]:
    events = [json.loads(line) for line in stdout.splitlines()]
    return {e["job"]: e for e in events if e["event"] == "job.finished"}


def test_a_failed_attempt_is_retried_and_the_result_says_what_it_got(
    write_config: WriteConfig, flaky: tuple[str, list[int]]
) -> None:
    url, sent = flaky
    config = write_config(
        f"""
        jobs:
          - name: api
            plugin: http-status
            retries: 2
            retry_delay: 10ms
            options: {{url: "{url}/"}}
        """
    )
    result = run_cli("run", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    api = finished(result.stdout)["api"]
    assert api["status"] == "ok"
    assert api["attempts"] == 2
    assert api["attempt_errors"] == ["fail: status 500, expected 2xx/3xx"]
    assert sent == [500, 200]
    # History keeps both.
    (stored,) = json.loads(run_cli("history", str(config), "api").stdout)
    assert stored["attempts"] == 2
    assert stored["attempt_errors"] == api["attempt_errors"]


def test_retries_fit_in_the_timeout_and_the_last_attempt_decides(
    write_config: WriteConfig, flaky: tuple[str, list[int]]
) -> None:
    url, sent = flaky
    config = write_config(
        f"""
        jobs:
          - name: api
            plugin: http-status
            timeout: 2s
            retries: 10
            retry_delay: 500ms
            options: {{url: "{url}/always-500"}}
        """
    )
    result = run_cli("run", str(config))
    assert result.returncode == 1
    api = finished(result.stdout)["api"]
    # Attempts at about 0, 0.5, 1.0 and 1.5 s (later on a loaded machine): a
    # fifth could not start before 2 s, so it is never made, and none was cut
    # short by the timeout.
    assert api["status"] == "fail" and 2 <= api["attempts"] <= 4
    assert api["attempts"] == len(sent) == len(api["attempt_errors"]) + 1


def test_exponential_pauses_double_up_to_the_cap() -> None:
    retry = Retry(retries=5, delay=1.0, exponential=True, max_delay=4.0)
    assert [retry.pause_before(n) for n in range(2, 7)] == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert Retry(retries=2, delay=0.5).pause_before(3) == 0.5


def test_retry_settings_are_checked(write_config: WriteConfig) -> None:
    config = write_config(
        """
        defaults: {retries: 11}
        jobs:
          - {name: a, plugin: sleep, retry_delay: soon}
          - {name: b, plugin: sleep, retry_delay: exponential, retry_delay_max: 5s}
          - {name: echo, plugin: echo-listener, retries: 1}
        """
    )
    result = run_cli("check", str(config))
    assert result.returncode == 2
    assert f"{config}:1: defaults: retries: input should be less than or equal to 10" in (
        result.stderr
    )
    assert "jobs[0] 'a': retry_delay: 'soon' is not a duration" in result.stderr
    assert "or 'exponential'" in result.stderr
    assert "jobs[1]" not in result.stderr
    assert "jobs[2] 'echo': retries: echo-listener is a service" in result.stderr

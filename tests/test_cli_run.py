"""`runner run` as a person sees it when something around the checks is wrong:
services that did not start, and why the exit code is what it is."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import local_http_server, run_cli, serve_until

WriteConfig = Callable[[str], Path]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
IN_USE = (
    "address already in use (another process is listening there; stop it or choose another port)"
)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another process listens on (this test)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.fixture
def services_taken(write_config: WriteConfig, taken_port: int) -> Iterator[tuple[Path, int]]:
    """A config whose two services cannot listen: the echo listener's port is
    taken, and the file server's port is served by another HTTP server, which
    the config's check then reaches instead."""
    with local_http_server() as other:
        port = int(other.rsplit(":", 1)[1])
        config = write_config(
            f"""
            jobs:
              - {{name: echo, plugin: echo-listener, options: {{port: {taken_port}}}}}
              - name: site
                plugin: file-server
                options: {{directory: ., port: {port}}}
              - name: site-status
                plugin: http-status
                options: {{url: "http://127.0.0.1:{port}/ok"}}
              - {{name: nap, plugin: sleep, options: {{seconds: 0}}}}
            """
        )
        yield config, port


def test_run_summary_leads_with_the_services_that_did_not_start(
    services_taken: tuple[Path, int], taken_port: int
) -> None:
    config, site_port = services_taken
    result = run_cli("run", str(config), "--log-format", "console")
    assert result.returncode == 1
    # --log-format console colours the summary too, on a pipe as on a terminal.
    assert "\x1b[" in result.stdout
    lines = [ANSI.sub("", line).rstrip() for line in result.stdout.splitlines()]
    lines = [
        line for line in lines if "service.failed" not in line and "service.not_ready" not in line
    ]
    assert lines[:3] == [
        "2 services did not start; the checks ran without them:",
        # One wording for "port in use" across the built-in services.
        f"  echo: cannot listen on 127.0.0.1:{taken_port}: {IN_USE}",
        f"  site: cannot listen on 127.0.0.1:{site_port}: {IN_USE}",
    ]
    assert lines[3].startswith("ok  site-status")
    assert lines[-3] == (
        f"note: site-status ran while site was down: its result comes from whatever "
        f"else answered on 127.0.0.1:{site_port}, not from site."
    )
    assert lines[-2] == "2 checks: 2 ok"
    assert lines[-1] == "exit code 1: 2 services did not start (echo and site)"


def test_run_json_ends_with_the_exit_code_and_its_reason(
    services_taken: tuple[Path, int],
) -> None:
    result = run_cli("run", str(services_taken[0]))
    assert result.returncode == 1
    events = [json.loads(line) for line in result.stdout.splitlines()]
    last = events[-1]
    assert last["event"] == "run.finished"
    assert last["level"] == "error"
    assert last["exit_code"] == 1
    assert last["reason"] == "2 services did not start (echo and site)"
    assert last["services_not_started"] == ["echo", "site"]
    assert last["checks_not_passed"] == []


def test_run_exit_reason_names_the_checks_that_did_not_pass(
    write_config: WriteConfig, http_base: str
) -> None:
    config = write_config(
        f"""
        jobs:
          - {{name: good, plugin: http-status, options: {{url: "{http_base}/ok"}}}}
          - {{name: bad, plugin: http-status, options: {{url: "{http_base}/error"}}}}
        """
    )
    result = run_cli("run", str(config), "--log-format", "console")
    assert result.returncode == 1
    lines = [ANSI.sub("", line).rstrip() for line in result.stdout.splitlines()]
    assert lines[-2:] == ["2 checks: 1 ok, 1 fail", "exit code 1: 1 check did not pass (bad)"]
    passed = run_cli("run", str(config), "--job", "good", "--log-format", "console")
    assert passed.returncode == 0
    assert ANSI.sub("", passed.stdout).splitlines()[-1] == "1 check: 1 ok"


def test_daemon_started_lists_no_service_when_all_are_ready(write_config: WriteConfig) -> None:
    config = write_config(
        """
        jobs:
          - {name: echo, plugin: echo-listener}
          - {name: nap, plugin: sleep, interval: 1h, options: {seconds: 0}}
        """
    )
    runner = serve_until(config, event="daemon.started")
    assert runner.find(event="daemon.started")[0]["services_not_ready"] == []

"""The offline hint: when every check that reaches a host fails to resolve its
name, runner says once that the machine seems offline and which config works
without a network.

Host names under ``.invalid`` never resolve (RFC 6761), with or without a
network, so these tests see what a user without one sees.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from helpers import run_cli, serve_until
from runner.offline import HINT

WriteConfig = Callable[[str], Path]
ANSI = re.compile(r"\x1b\[[0-9;]*m")

UNRESOLVABLE = """
jobs:
  - {name: one, plugin: http-status, interval: 1h, options: {url: "http://one.runner-test.invalid/"}}
  - {name: two, plugin: http-status, interval: 1h, options: {url: "https://two.runner-test.invalid/"}}
  - {name: nap, plugin: sleep, interval: 1h, options: {seconds: 0}}
"""


def test_serve_says_once_that_the_machine_seems_offline(write_config: WriteConfig) -> None:
    runner = serve_until(write_config(UNRESOLVABLE), event="network.offline")
    (event,) = runner.find(event="network.offline")
    assert event["level"] == "warning"
    assert event["checks"] == 2  # the sleep check reaches no host and does not count
    assert "configs/local.yaml" in event["hint"]
    failed = runner.find(event="job.finished", status="error")
    assert {e["job"] for e in failed} == {"one", "two"}


def test_run_summary_ends_with_the_hint(write_config: WriteConfig) -> None:
    result = run_cli("run", str(write_config(UNRESOLVABLE)), "--log-format", "console")
    assert result.returncode == 1
    text = " ".join(ANSI.sub("", result.stdout).split())  # the note may wrap
    assert text.count("seems to be offline") == 1
    assert f"note: {HINT}" in text


def test_no_hint_when_a_check_reaches_its_host(write_config: WriteConfig, http_base: str) -> None:
    config = write_config(
        f"""
        jobs:
          - {{name: one, plugin: http-status, options: {{url: "http://one.runner-test.invalid/"}}}}
          - {{name: two, plugin: http-status, options: {{url: "http://two.runner-test.invalid/"}}}}
          - {{name: local, plugin: http-status, options: {{url: "{http_base}/ok"}}}}
        """
    )
    result = run_cli("run", str(config))
    assert result.returncode == 1
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["job"] for e in events if e["event"] == "job.finished" and e["status"] == "ok"] == [
        "local"
    ]
    assert not [e for e in events if e["event"] == "network.offline"]


def test_no_hint_for_a_single_unresolvable_host(write_config: WriteConfig) -> None:
    """One name that does not resolve is more likely a typo than no network."""
    config = write_config(
        """
        jobs:
          - {name: one, plugin: http-status, options: {url: "http://one.runner-test.invalid/"}}
        """
    )
    result = run_cli("run", str(config), "--log-format", "console")
    assert result.returncode == 1
    assert "offline" not in result.stdout

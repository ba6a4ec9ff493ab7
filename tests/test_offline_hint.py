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
from typing import Any

import pytest

from helpers import closed_port, run_cli, serve_until
from runner.builtins.browser.page_title import PageTitle
from runner.builtins.browser.steps import BrowserSteps
from runner.builtins.http.status import HttpStatus
from runner.builtins.tcp import Tcp
from runner.config import load_config
from runner.model import RunRecord
from runner.offline import HINT, network_checks, offline_hint
from runner.plugin import UNRESOLVED_HOST, Check, Status
from runner.testing import run_check

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


def test_a_check_to_an_address_or_localhost_counts_neither_way(
    write_config: WriteConfig, http_base: str
) -> None:
    """It passes offline too, so it proves nothing about the network: the hint
    still comes when every check that needs a name server failed to resolve
    (configs/site-checks.yaml has such a check, and offline got no hint)."""
    assert http_base.startswith("http://127.0.0.1:")
    config = write_config(
        f"""
        jobs:
          - {{name: one, plugin: http-status, options: {{url: "http://one.runner-test.invalid/"}}}}
          - {{name: two, plugin: http-status, options: {{url: "http://two.runner-test.invalid/"}}}}
          - {{name: local, plugin: http-status, options: {{url: "{http_base}/ok"}}}}
          - {{name: named, plugin: tcp, options: {{host: localhost, port: 1}}}}
          - {{name: v6, plugin: http-status, options: {{url: "http://[::1]:1/"}}}}
        """
    )
    assert network_checks(load_config(config).jobs) == ["one", "two"]
    result = run_cli("run", str(config))
    assert result.returncode == 1
    events = [json.loads(line) for line in result.stdout.splitlines()]
    ok = [e["job"] for e in events if e["event"] == "job.finished" and e["status"] == "ok"]
    assert ok == ["local"]
    (hint,) = [e for e in events if e["event"] == "network.offline"]
    assert hint["checks"] == 2


def test_no_hint_when_a_check_reaches_its_host_by_name(write_config: WriteConfig) -> None:
    """A name that resolved (here: a run that got an answer, not a resolution
    error) shows the network works. Built from records: no test may depend on
    a name server, and every name that resolves offline is local."""
    config = load_config(
        write_config(
            """
            jobs:
              - {name: one, plugin: http-status, options: {url: "http://one.runner-test.invalid/"}}
              - {name: two, plugin: http-status, options: {url: "http://two.runner-test.invalid/"}}
              - {name: web, plugin: http-status, options: {url: "http://web.example/"}}
            """
        )
    )

    def record(job: str, status: Status, **fields: Any) -> RunRecord:
        return RunRecord(job, "http-status", status, "x", fields, 0.0, 0.0, 1.0)

    unresolved = [
        record("one", Status.ERROR, **{UNRESOLVED_HOST: "one.runner-test.invalid"}),
        record("two", Status.ERROR, **{UNRESOLVED_HOST: "two.runner-test.invalid"}),
    ]
    assert offline_hint(config.jobs, unresolved) == HINT
    assert offline_hint(config.jobs, [*unresolved, record("web", Status.FAIL)]) is None


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


# --- what the plugins declare -------------------------------------------------


def test_the_checks_that_reach_a_host_are_those_that_declare_one(
    write_config: WriteConfig, testplugins: Path
) -> None:
    config = load_config(
        write_config(
            """
            jobs:
              - {name: web, plugin: http-status, options: {url: "http://web.example:8080/x"}}
              - {name: port, plugin: tcp, options: {host: db.example, port: 5432}}
              - {name: title, plugin: page-title, options: {url: "https://title.example/"}}
              - name: steps
                plugin: browser-steps
                options: {steps: [{expect_title: x}, {goto: "https://steps.example/"}]}
              - {name: reach, plugin: reach, options: {endpoint: "api.example:443"}}
              - {name: lookup, plugin: dns, options: {name: example.com, server: 192.0.2.1}}
              - {name: nap, plugin: sleep, options: {seconds: 0}}
              - {name: echo, plugin: echo-listener}
            """
        )
    )
    targets = {job.name: job.plugin.target_host(job.options) for job in config.checks}
    assert targets == {
        "web": "web.example",
        "port": "db.example",
        "title": "title.example",
        "steps": "steps.example",
        "reach": "api.example",
        # A DNS check asks a server by its address: no name of its own to resolve.
        "lookup": None,
        "nap": None,
    }
    assert network_checks(config.jobs) == ["web", "port", "title", "steps", "reach"]


@pytest.mark.parametrize(
    ("plugin", "options"),
    [
        pytest.param(HttpStatus, {"url": "http://web.runner-test.invalid/"}, id="http-status"),
        pytest.param(Tcp, {"host": "web.runner-test.invalid", "port": 80}, id="tcp"),
        pytest.param(PageTitle, {"url": "http://web.runner-test.invalid/"}, id="page-title"),
        pytest.param(
            BrowserSteps,
            {"steps": [{"goto": "http://web.runner-test.invalid/"}]},
            id="browser-steps",
        ),
    ],
)
async def test_each_network_check_says_when_its_host_did_not_resolve(
    plugin: type[Check[Any]], options: dict[str, Any]
) -> None:
    result = await run_check(plugin, options, timeout=30)
    assert result.status is Status.ERROR, result.message
    assert result.fields[UNRESOLVED_HOST] == "web.runner-test.invalid", result.fields


async def test_a_refused_connection_is_not_a_name_that_did_not_resolve() -> None:
    result = await run_check(Tcp, {"host": "127.0.0.1", "port": closed_port()})
    assert result.status is Status.ERROR
    assert UNRESOLVED_HOST not in result.fields


def test_a_third_party_check_with_an_endpoint_option_gets_the_hint(
    write_config: WriteConfig, testplugins: Path
) -> None:
    config = write_config(
        """
        defaults: {interval: 1h}
        jobs:
          - {name: db, plugin: reach, options: {endpoint: "db.runner-test.invalid:5432"}}
          - {name: mq, plugin: reach, options: {endpoint: "mq.runner-test.invalid:5672"}}
          - {name: nap, plugin: sleep, options: {seconds: 0}}
        """
    )
    runner = serve_until(config, event="network.offline")
    (event,) = runner.find(event="network.offline")
    assert event["checks"] == 2
    failed = runner.find(event="job.finished", status="error")
    assert {(e["job"], e["unresolved_host"]) for e in failed} == {
        ("db", "db.runner-test.invalid"),
        ("mq", "mq.runner-test.invalid"),
    }

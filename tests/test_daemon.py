"""The daemon as a real subprocess: real config, real peers, real signals."""

from __future__ import annotations

import json
import re
import signal
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from helpers import (
    RunnerProcess,
    alive,
    closed_port,
    descendants,
    echo_roundtrip,
    run_cli,
    wait_until,
)

WriteConfig = Callable[..., Path]


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), f"timestamp {value!r} is not UTC"
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_serve_runs_every_plugin_and_stops_cleanly_on_sigterm(
    write_config: WriteConfig, http_base: str
) -> None:
    config = write_config(
        f"""
        defaults:
          interval: 1h
          timeout: 15s
        jobs:
          - name: echo
            plugin: echo-listener
          - name: web-ok
            plugin: http-status
            options: {{url: "{http_base}/ok"}}
          - name: web-500
            plugin: http-status
            options: {{url: "{http_base}/error"}}
          - name: web-closed
            plugin: http-status
            options: {{url: "http://127.0.0.1:{closed_port()}/"}}
          - name: title
            plugin: page-title
            options: {{url: "{http_base}/ok", expect_title: Local page}}
          - name: nap
            plugin: sleep
            options: {{seconds: 0.01}}
        """
    )
    runner = RunnerProcess("serve", str(config))
    try:
        started = runner.wait_for(event="service.started", job="echo")[0]
        assert started["host"] == "127.0.0.1"
        assert echo_roundtrip(started["port"], b"hello runner\n") == b"hello runner\n"

        results = {
            name: runner.wait_for(event="job.finished", job=name)[0]
            for name in ("web-ok", "web-500", "web-closed", "title", "nap")
        }
        for name, event in results.items():
            for key in ("timestamp", "level", "event", "job", "plugin", "status", "duration_ms"):
                assert key in event, (name, key)
            assert parse_time(event["timestamp"]) > datetime.now().astimezone() - timedelta(
                minutes=5
            )
            assert isinstance(event["duration_ms"], int | float)
        assert results["web-ok"]["status"] == "ok"
        assert results["web-ok"]["status_code"] == 200
        assert results["web-ok"]["plugin"] == "http-status"
        assert results["web-500"]["status"] == "fail"
        assert results["web-500"]["status_code"] == 500
        assert results["web-500"]["level"] == "warning"
        assert results["web-closed"]["status"] == "error"
        assert results["web-closed"]["level"] == "error"
        assert results["title"]["status"] == "ok", results["title"]
        assert results["title"]["title"] == "Local page"
        assert results["nap"]["status"] == "ok"

        chromium = alive(descendants(runner.proc.pid), "chromium")
        assert chromium, "page-title ran, so a browser should be running"
        assert runner.stop(signal.SIGTERM, timeout=5) == 0
    finally:
        runner.kill()
    wait_until(lambda: not alive(chromium), 5, "chromium processes to go away")
    events = [e["event"] for e in runner.events]
    assert events[0] == "daemon.starting"
    assert events[-1] == "daemon.stopped"
    assert "daemon.stopping" in events
    assert runner.find(event="daemon.stopping")[0]["reason"] == "SIGTERM"
    assert runner.find(event="listener.stopped", job="echo")


def test_sigint_stops_with_exit_0(write_config: WriteConfig) -> None:
    config = write_config("jobs:\n  - {name: nap, plugin: sleep, options: {seconds: 30}}\n")
    runner = RunnerProcess("serve", str(config))
    try:
        runner.wait_for(event="daemon.started")
        # A run is in flight (30 s sleep): it must be cancelled, not waited for.
        assert runner.stop(signal.SIGINT, timeout=5) == 0
    finally:
        runner.kill()
    assert runner.find(event="daemon.stopping")[0]["reason"] == "SIGINT"


def test_invalid_config_exits_2_before_anything_starts(write_config: WriteConfig) -> None:
    config = write_config(
        """
        jobs:
          - name: echo
            plugin: echo-listener
          - name: api
            plugin: http-status
            options: {url: 12}
        """
    )
    result = run_cli("serve", str(config))
    assert result.returncode == 2
    assert result.stdout == ""  # nothing started, nothing logged
    assert f"{config}:6: jobs[1] 'api': options.url: not a valid URL" in result.stderr


def test_failing_plugins_never_stop_the_others(
    testplugins: Path, write_config: WriteConfig
) -> None:
    config = write_config(
        """
        defaults:
          interval: 300ms
          timeout: 250ms
        jobs:
          - {name: raiser, plugin: raises, options: {message: kaboom}}
          - {name: hanger, plugin: hangs}
          - {name: nap, plugin: sleep, options: {seconds: 0}}
          - {name: bad-service, plugin: flaky-service, options: {message: no luck}}
          - {name: gone, plugin: missing-module}
          - {name: buggy, plugin: broken-import}
        """
    )
    runner = RunnerProcess("serve", str(config))
    try:
        # Installed but unloadable plugins: said once at start, then an error per run.
        runner.wait_for(event="daemon.started")
        load_failed = {e["job"]: e["error"] for e in runner.find(event="plugin.load_failed")}
        assert "module 'runner_testplugins_not_installed' is not installed" in load_failed["gone"]
        assert "RuntimeError: this module is broken on purpose" in load_failed["buggy"]
        for name in ("gone", "buggy"):
            runs = runner.wait_for(event="job.finished", job=name, count=2)
            assert {(e["status"], e["error_type"]) for e in runs} == {("error", "PluginLoadError")}
        raised = runner.wait_for(event="job.finished", job="raiser", count=3)
        assert {(e["status"], e["error_type"], e["message"]) for e in raised} == {
            ("error", "RuntimeError", "kaboom")
        }
        hung = runner.wait_for(event="job.finished", job="hanger", count=2)
        assert {e["status"] for e in hung} == {"timeout"}
        assert all(200 <= e["duration_ms"] < 1000 for e in hung)
        naps = runner.wait_for(event="job.finished", job="nap", count=5)
        assert {e["status"] for e in naps} == {"ok"}
        failed = runner.wait_for(event="service.failed", job="bad-service")[0]
        assert failed["error"] == "no luck"
        assert failed["error_type"] == "OSError"
        assert runner.proc.poll() is None
        assert runner.stop() == 0
    finally:
        runner.kill()


def test_a_run_still_going_is_skipped_not_stacked(write_config: WriteConfig) -> None:
    config = write_config(
        """
        jobs:
          - name: slow
            plugin: sleep
            interval: 200ms
            timeout: 5s
            options: {seconds: 0.5}
        """
    )
    runner = RunnerProcess("serve", str(config))
    try:
        runs = runner.wait_for(event="job.finished", job="slow", count=3)
        skipped = runner.find(event="job.skipped", job="slow")
        assert skipped and skipped[0]["reason"] == "previous run still going"
        # Each run started only after the previous one had finished.
        spans = []
        for event in runs:
            end = parse_time(event["timestamp"])
            spans.append((end - timedelta(milliseconds=event["duration_ms"]), end))
        for (_, previous_end), (start, _) in pairwise(spans):
            assert start >= previous_end - timedelta(milliseconds=5)
        assert runner.stop() == 0
    finally:
        runner.kill()


def test_first_run_comes_soon_after_start_even_with_a_long_interval(
    write_config: WriteConfig,
) -> None:
    config = write_config(
        "jobs:\n  - {name: hourly, plugin: sleep, interval: 1h, options: {seconds: 0}}\n"
    )
    runner = RunnerProcess("serve", str(config))
    try:
        started = parse_time(runner.wait_for(event="daemon.started")[0]["timestamp"])
        finished = parse_time(runner.wait_for(event="job.finished", job="hourly")[0]["timestamp"])
        # The spread puts a first run at most one second after start.
        assert finished - started < timedelta(seconds=1.5)
        assert runner.stop() == 0
    finally:
        runner.kill()


def test_listener_that_cannot_bind_is_reported_and_the_rest_keeps_running(
    write_config: WriteConfig,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(
            f"""
            jobs:
              - {{name: echo, plugin: echo-listener, options: {{port: {port}}}}}
              - {{name: nap, plugin: sleep, interval: 200ms, options: {{seconds: 0}}}}
            """
        )
        runner = RunnerProcess("serve", str(config))
        try:
            failed = runner.wait_for(event="service.failed", job="echo")[0]
            assert f"cannot listen on 127.0.0.1:{port}" in failed["error"]
            assert failed["retry_in_s"] > 0
            assert runner.wait_for(event="daemon.started")[0]["services_not_ready"] == ["echo"]
            runner.wait_for(event="job.finished", job="nap", count=3)
        finally:
            code = runner.stop()
            runner.kill()
    assert code == 0


def test_run_exits_0_when_all_checks_pass_and_prints_json_lines(
    write_config: WriteConfig, http_base: str
) -> None:
    config = write_config(
        f"""
        jobs:
          - {{name: echo, plugin: echo-listener}}
          - {{name: web, plugin: http-status, options: {{url: "{http_base}/ok"}}}}
          - {{name: nap, plugin: sleep, options: {{seconds: 0}}}}
        """
    )
    result = run_cli("run", str(config))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    finished = {e["job"]: e for e in events if e["event"] == "job.finished"}
    assert set(finished) == {"web", "nap"}
    assert finished["web"]["status_code"] == 200
    # The listener was started before the checks and stopped after them.
    names = [e["event"] for e in events]
    assert names.index("service.started") < names.index("job.finished")
    assert names.index("service.stopped") > max(
        i for i, n in enumerate(names) if n == "job.finished"
    )


@pytest.fixture
def good_and_bad(write_config: WriteConfig, http_base: str) -> Path:
    """A config with one check that passes and one that fails (status 500)."""
    return write_config(
        f"""
        jobs:
          - {{name: good, plugin: http-status, options: {{url: "{http_base}/ok"}}}}
          - {{name: bad, plugin: http-status, options: {{url: "{http_base}/error"}}}}
        """
    )


def test_run_exits_1_when_a_check_fails_and_can_select_jobs(good_and_bad: Path) -> None:
    assert run_cli("run", str(good_and_bad)).returncode == 1
    only_good = run_cli("run", str(good_and_bad), "--job", "good")
    assert only_good.returncode == 0
    events = [json.loads(line) for line in only_good.stdout.splitlines()]
    assert [e["job"] for e in events if e["event"] == "job.finished"] == ["good"]
    unknown = run_cli("run", str(good_and_bad), "--job", "nope")
    assert unknown.returncode == 2
    assert "no job named 'nope'" in unknown.stderr


def test_run_console_summary(good_and_bad: Path) -> None:
    result = run_cli("run", str(good_and_bad), "--log-format", "console")
    assert result.returncode == 1
    # Coloured like the console log lines (tests/test_cli_run.py has the rest).
    lines = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout).splitlines()
    assert any(line.startswith("ok") and "good" in line for line in lines), lines
    assert any(line.startswith("FAIL") and "bad" in line and "500" in line for line in lines)
    assert lines[-2] == "2 checks: 1 ok, 1 fail"


def test_version_and_plugins_list(testplugins: Path) -> None:
    version = run_cli("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("runner ")
    listing = run_cli("plugins")
    # Broken plugins are named with their distribution and reason; the rest still list.
    assert listing.returncode == 1
    out = listing.stdout
    for name in ("http-status", "page-title", "sleep", "echo-listener", "raises", "hangs"):
        assert f"{name}  (" in out, name
    assert "broken-import  (runner-testplugins 0.0.1)  BROKEN" in out
    assert "RuntimeError: this module is broken on purpose" in out
    assert "module 'runner_testplugins_not_installed' is not installed" in out
    assert "not a subclass of runner.plugin.Check or runner.plugin.Service" in out


def test_journal_format_prefixes_each_json_line_with_its_syslog_priority(
    good_and_bad: Path,
) -> None:
    result = run_cli("run", str(good_and_bad), "--log-format", "journal")
    assert result.returncode == 1
    by_job = {}
    for line in result.stdout.splitlines():
        prefix, _, rest = line.partition(">")
        event = json.loads(rest)
        if event["event"] == "job.finished":
            by_job[event["job"]] = (prefix + ">", event["status"])
    assert by_job == {"good": ("<6>", "ok"), "bad": ("<4>", "fail")}


def test_plugins_name_shows_every_option_with_type_default_and_description() -> None:
    result = run_cli("plugins", "http-status")
    assert result.returncode == 0
    out = result.stdout
    assert out.startswith("http-status  (runner-daemon ")
    assert "      url: AnyHttpUrl (required)" in out
    assert "      follow_redirects: bool = True" in out
    assert "Status codes that count as ok" in out
    assert "page-title" not in out
    unknown = run_cli("plugins", "nope")
    assert unknown.returncode == 2
    assert "unknown plugin 'nope'" in unknown.stderr

"""Plugins that misbehave take nothing else with them (issue 12, section 2).

Each misbehaving plugin is a real third-party plugin (tests/testplugins,
installed with pip) run by a real daemon subprocess, next to a control job
whose results must keep coming on schedule the whole time; SIGTERM must end
the daemon within its grace whatever the plugins do.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from helpers import RunnerProcess, run_cli

WriteConfig = Callable[..., Path]

#: The control job's interval, and the largest gap allowed between two of its
#: results: a blocked loop or a dead scheduler shows as seconds.
CONTROL_INTERVAL = 0.2
MAX_GAP = 1.5
#: daemon.STOP_GRACE (5 s) + execution.CANCEL_GRACE (1 s) + process.LEFTOVER_GRACE (2 s),
#: and a margin for a busy machine.
STOP_WITHIN = 12.0


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def assert_on_schedule(events: list[dict[str, Any]]) -> None:
    times = [epoch(e["timestamp"]) for e in events]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps, "the control job produced fewer than two results"
    assert max(gaps) < MAX_GAP, f"the control job stalled for {max(gaps):.2f}s"
    assert all(e["status"] == "ok" for e in events)


def test_misbehaving_plugins_are_results_and_the_control_job_keeps_its_schedule(
    testplugins: Path, write_config: WriteConfig
) -> None:
    config = write_config(
        f"""
        history: {{flush_every: 100ms}}
        jobs:
          - {{name: control, plugin: sleep, interval: {CONTROL_INTERVAL}, options: {{seconds: 0}}}}
          - {{name: deaf, plugin: ignores-cancel, interval: 2s, timeout: 300ms}}
          - {{name: deaf-too, plugin: ignores-cancel, interval: 2s, timeout: 300ms}}
          - {{name: deaf-service, plugin: ignores-cancel-service}}
          - {{name: exits, plugin: exits, interval: 500ms}}
          - {{name: exits-service, plugin: exits-service}}
          - {{name: interrupts, plugin: interrupts, interval: 500ms}}
          - {{name: cancels, plugin: cancels-itself, interval: 500ms}}
          - {{name: prints, plugin: prints, interval: 1s}}
          - {{name: odd, plugin: odd-fields, interval: 500ms}}
        """,
        name="misbehaving.yaml",
    )
    with RunnerProcess("serve", str(config)) as runner:
        # Each job goes on: several results each, never job.skipped forever.
        for job in ("deaf", "deaf-too"):
            for e in runner.wait_for(event="job.finished", job=job, count=3, timeout=20):
                assert e["status"] == "timeout"
        for job in ("exits", "interrupts", "cancels", "prints", "odd"):
            runner.wait_for(event="job.finished", job=job, count=3, timeout=20)
        failed = runner.wait_for(event="service.failed", job="exits-service")[0]
        assert failed["error_type"] == "SystemExit"
        assert runner.proc.poll() is None  # sys.exit() did not end the daemon
        runner.wait_for(event="job.finished", job="control", count=20)
        sent = time.monotonic()
        assert runner.stop(timeout=STOP_WITHIN) == 0
        took = time.monotonic() - sent
    assert took < STOP_WITHIN

    # Every stdout line is one JSON object (RunnerProcess parses each), and the
    # plugin's prints went to stderr instead.
    assert len(runner.raw_lines) == len(runner.events)
    assert "PLUGIN-PRINT-no-newline" in runner.stderr
    assert "PLUGIN-FD1-raw" in runner.stderr
    assert not any("PLUGIN-" in line for line in runner.raw_lines)

    assert_on_schedule(runner.find(event="job.finished", job="control"))
    assert not runner.find(event="job.skipped", job="deaf")

    # Abandoned runs: logged once per plugin, with its name; counted at stop.
    abandoned = runner.find(event="run.abandoned")
    assert [e["plugin"] for e in abandoned] == ["ignores-cancel"]
    stopped = runner.find(event="daemon.stopped")[0]
    assert stopped["abandoned"] >= 6

    def last(job: str) -> dict[str, Any]:
        return runner.find(event="job.finished", job=job)[-1]

    assert last("exits")["status"] == "error"
    assert last("exits")["error_type"] == "SystemExit"
    assert "sys.exit(3)" in last("exits")["message"]
    assert last("interrupts")["status"] == "error"
    assert last("interrupts")["error_type"] == "KeyboardInterrupt"
    assert last("cancels")["status"] == "error"
    assert last("cancels")["error_type"] == "CancelledError"
    assert last("prints")["status"] == "ok"

    odd = last("odd")
    assert odd["status"] == "ok"
    assert odd["pairs"] == {"('a', 1)": "tuple key", "2": "int key"}
    assert odd["thing"] == "<opaque thing>"
    assert odd["peer"] == ["127.0.0.1", 443]
    assert odd["ratio"] == "nan"
    assert not runner.find(event="sink.failed")
    # And history kept it too.
    result = run_cli("history", str(config), "odd", "--json")
    assert result.returncode == 0, result.stderr
    stored = json.loads(result.stdout)
    assert len(stored) == len(runner.find(event="job.finished", job="odd"))
    assert stored[0]["pairs"] == odd["pairs"]


def test_runner_run_ends_whatever_the_plugins_do(
    testplugins: Path, write_config: WriteConfig
) -> None:
    config = write_config(
        """
        jobs:
          - {name: deaf, plugin: ignores-cancel, timeout: 300ms}
          - {name: exits, plugin: exits}
          - {name: cancels, plugin: cancels-itself}
          - {name: prints, plugin: prints}
          - {name: fine, plugin: sleep, options: {seconds: 0}}
        """
    )
    result = run_cli("run", str(config), "--log-format", "json", timeout=30)
    assert result.returncode == 1, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]  # every line is JSON
    finished = {e["job"]: e for e in events if e["event"] == "job.finished"}
    assert {job: e["status"] for job, e in finished.items()} == {
        "deaf": "timeout",
        "exits": "error",
        "cancels": "error",
        "prints": "ok",
        "fine": "ok",
    }
    assert "PLUGIN-FD1-raw" in result.stderr

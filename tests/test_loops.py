"""The daemon on both event loops (``--loop asyncio`` and ``--loop uvloop``), as a
real subprocess: signals, reload, the echo listener, the blocked-loop warning,
a browser check; and what ``--loop`` says when uvloop is missing."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import RunnerProcess, echo_roundtrip, run_cli

WriteConfig = Callable[..., Path]
LOOPS = ["asyncio", "uvloop"]


@pytest.mark.parametrize("loop", LOOPS)
def test_serve_echoes_reloads_on_sighup_and_stops_on_sigterm(
    loop: str, write_config: WriteConfig
) -> None:
    config = write_config(
        """
        jobs:
          - {name: echo, plugin: echo-listener}
          - {name: tick, plugin: sleep, interval: 200ms, options: {seconds: 0}}
        """
    )
    with RunnerProcess("serve", str(config), "--loop", loop) as runner:
        assert runner.wait_for(event="daemon.starting")[0]["loop"] == loop
        port = runner.wait_for(event="service.started", job="echo")[0]["port"]
        payload = bytes(range(256)) * 4096  # 1 MiB: more than one read and write
        assert echo_roundtrip(port, payload) == payload
        runner.wait_for(event="job.finished", job="tick", count=2)

        config.write_text(config.read_text() + "  - {name: tock, plugin: sleep, interval: 200ms}\n")
        runner.proc.send_signal(signal.SIGHUP)
        reloaded = runner.wait_for(event="daemon.reloaded")[0]
        assert reloaded["added"] == ["tock"]
        assert sorted(reloaded["kept"]) == ["echo", "tick"]
        runner.wait_for(event="job.finished", job="tock")
        # The listener kept its port through the reload.
        assert echo_roundtrip(port, b"still here\n") == b"still here\n"
        assert runner.stop() == 0
    assert runner.find(event="daemon.stopped")
    assert not runner.find(level="error")


@pytest.mark.parametrize("loop", LOOPS)
def test_a_blocked_loop_is_reported(
    loop: str, testplugins: Path, write_config: WriteConfig
) -> None:
    config = write_config(
        """
        jobs:
          - {name: blocker, plugin: stubborn, interval: 1h, timeout: 10s, options: {seconds: 1.5}}
        """
    )
    with RunnerProcess("serve", str(config), "--loop", loop) as runner:
        blocked = runner.wait_for(event="loop.blocked")[0]
        assert blocked["job"] == "blocker"
        assert "plugins.py" in blocked["where"]
        assert runner.wait_for(event="loop.unblocked")[0]["blocked_ms"] >= 1000
        assert runner.stop() == 0


@pytest.mark.parametrize("loop", LOOPS)
def test_runner_run_of_a_page_title_check(
    loop: str, write_config: WriteConfig, http_base: str
) -> None:
    config = write_config(
        f"""
        jobs:
          - name: title
            plugin: page-title
            timeout: 30s
            options: {{url: "{http_base}/ok", expect_title: Local page}}
        """
    )
    result = run_cli("run", str(config), "--loop", loop, "--log-format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["loop"] for e in events if e["event"] == "daemon.starting"] == [loop]
    (finished,) = [e for e in events if e["event"] == "job.finished"]
    assert finished["status"] == "ok"


def test_loop_uvloop_without_uvloop_says_how_to_install_it(
    tmp_path: Path, write_config: WriteConfig
) -> None:
    # uvloop is installed here; a module that fails to import stands in for
    # a machine without it.
    (tmp_path / "uvloop.py").write_text("raise ImportError('No module named uvloop')\n")
    config = write_config("jobs:\n  - {name: tick, plugin: sleep, interval: 1h}\n")
    env = {"PYTHONPATH": str(tmp_path)}
    result = run_cli("serve", str(config), "--loop", "uvloop", env=env)
    assert result.returncode == 2
    assert "pip install 'runner-daemon[fast]'" in result.stderr
    assert "--loop asyncio" in result.stderr

    # auto falls back to asyncio's loop.
    with RunnerProcess("serve", str(config), env=env) as runner:
        assert runner.wait_for(event="daemon.starting")[0]["loop"] == "asyncio"
        assert runner.stop() == 0

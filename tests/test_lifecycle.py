"""systemd-facing behaviour of the daemon as a real subprocess: sd_notify over a
real datagram socket, reload on SIGHUP, and the blocked-loop warning."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from helpers import RunnerProcess, wait_until

WriteConfig = Callable[..., Path]


class NotifySocket:
    """A datagram socket standing in for systemd's; collects every message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            self.messages.append((time.monotonic(), fields))

    def wait_for(self, key: str, value: str = "1", after: int = 0, timeout: float = 15) -> int:
        """Index of the first message at or after ``after`` with key=value."""

        def find() -> int | None:
            for i, (_, fields) in enumerate(self.messages[after:], start=after):
                if fields.get(key) == value:
                    return i
            return None

        return int(
            wait_until(lambda: find() is not None and (find(),), timeout, f"{key}={value}")[0]
        )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    ns = NotifySocket(tmp_path / "notify.sock")
    yield ns
    ns.close()


def test_notify_ready_watchdog_reload_stopping(
    write_config: WriteConfig, notify_socket: NotifySocket
) -> None:
    config = write_config(
        """
        jobs:
          - {name: echo, plugin: echo-listener}
          - {name: nap, plugin: sleep, interval: 1h, options: {seconds: 0}}
        """
    )
    runner = RunnerProcess(
        "serve",
        str(config),
        env={"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "400000"},
    )
    try:
        ready = notify_socket.wait_for("READY")
        # READY=1 comes only once the listener accepts connections.
        port = runner.find(event="service.started", job="echo")[0]["port"]
        with socket.create_connection(("127.0.0.1", port), timeout=2) as client:
            client.sendall(b"ping")
            assert client.recv(4) == b"ping"
        status = notify_socket.messages[ready][1]["STATUS"]
        assert "1 checks, 1 services" in status

        # Watchdog pings every WATCHDOG_USEC / 2 = 0.2 s.
        first = notify_socket.wait_for("WATCHDOG", after=ready)
        wait_until(
            lambda: sum(1 for _, m in notify_socket.messages[first:] if "WATCHDOG" in m) >= 6,
            5,
            "six watchdog pings",
        )
        pings = [t for t, m in notify_socket.messages[first:] if "WATCHDOG" in m]
        gaps = [b - a for a, b in pairwise(pings)]
        assert 0.1 < sorted(gaps)[len(gaps) // 2] < 0.35, gaps

        before_reload = len(notify_socket.messages)
        runner.proc.send_signal(signal.SIGHUP)
        reloading = notify_socket.wait_for("RELOADING", after=before_reload)
        monotonic_usec = int(notify_socket.messages[reloading][1]["MONOTONIC_USEC"])
        assert abs(monotonic_usec / 1e6 - time.monotonic()) < 10
        notify_socket.wait_for("READY", after=reloading)
        runner.wait_for(event="daemon.reloaded")

        before_stop = len(notify_socket.messages)
        assert runner.stop(signal.SIGTERM) == 0
        notify_socket.wait_for("STOPPING", after=before_stop, timeout=2)
    finally:
        runner.kill()


def test_reload_applies_a_diff_and_keeps_connections(write_config: WriteConfig) -> None:
    write = lambda text: write_config(text, name="runner.yaml")  # noqa: E731 - same file each time
    config = write(
        """
        jobs:
          - {name: echo, plugin: echo-listener}
          - {name: hourly, plugin: sleep, interval: 1h, options: {seconds: 0}}
          - {name: gone, plugin: sleep, interval: 200ms, options: {seconds: 0}}
          - {name: changing, plugin: sleep, interval: 200ms, options: {seconds: 0}}
        """
    )
    runner = RunnerProcess("serve", str(config))
    try:
        port = runner.wait_for(event="service.started", job="echo")[0]["port"]
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client.sendall(b"before")
        assert client.recv(6) == b"before"
        runner.wait_for(event="job.finished", job="hourly")
        runner.wait_for(event="job.finished", job="changing")

        write(
            """
            jobs:
              - {name: echo, plugin: echo-listener}
              - {name: hourly, plugin: sleep, interval: 1h, options: {seconds: 0}}
              - {name: changing, plugin: sleep, interval: 200ms, options: {seconds: 0.01}}
              - {name: added, plugin: sleep, interval: 200ms, options: {seconds: 0}}
            """
        )
        runner.proc.send_signal(signal.SIGHUP)
        reloaded = runner.wait_for(event="daemon.reloaded")[0]
        assert reloaded["added"] == ["added"]
        assert reloaded["removed"] == ["gone"]
        assert reloaded["changed"] == ["changing"]
        assert reloaded["kept"] == ["echo", "hourly"]

        # The open connection survived; the listener was not restarted.
        client.sendall(b"after")
        assert client.recv(5) == b"after"
        client.close()
        assert len(runner.find(event="service.started", job="echo")) == 1

        # New and changed jobs run with their new options; the removed one stops.
        runner.wait_for(event="job.finished", job="added", count=3)
        changed_runs = [e for e in runner.find(event="job.finished", job="changing")]
        assert changed_runs[-1]["slept_s"] >= 0.01
        gone_count = len(runner.find(event="job.finished", job="gone"))
        runner.wait_for(event="job.finished", job="added", count=6)
        assert len(runner.find(event="job.finished", job="gone")) == gone_count
        # The unchanged hourly job kept its schedule: a restart would have run it
        # again within a second of the reload (its first-run spread).
        assert len(runner.find(event="job.finished", job="hourly")) == 1
        assert runner.stop() == 0
    finally:
        runner.kill()


def test_a_broken_config_on_reload_is_refused_and_the_old_one_keeps_running(
    write_config: WriteConfig,
) -> None:
    config = write_config(
        "jobs:\n  - {name: tick, plugin: sleep, interval: 200ms, options: {seconds: 0}}\n",
        name="runner.yaml",
    )
    runner = RunnerProcess("serve", str(config))
    try:
        runner.wait_for(event="job.finished", job="tick")
        config.write_text("jobs:\n  - {name: tick, plugin: sleep, interval: soon}\n")
        runner.proc.send_signal(signal.SIGHUP)
        refused = runner.wait_for(event="reload.refused")[0]
        assert any("interval: 'soon' is not a duration" in p for p in refused["problems"])
        count = len(runner.find(event="job.finished", job="tick"))
        runner.wait_for(event="job.finished", job="tick", count=count + 3)
        assert runner.proc.poll() is None
        assert runner.stop() == 0
    finally:
        runner.kill()


def test_a_plugin_blocking_the_loop_is_named_and_stops_the_watchdog(
    testplugins: Path, write_config: WriteConfig, notify_socket: NotifySocket
) -> None:
    config = write_config(
        """
        jobs:
          - {name: blocker, plugin: stubborn, interval: 1h, timeout: 10s, options: {seconds: 2}}
        """
    )
    runner = RunnerProcess(
        "serve",
        str(config),
        env={"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "400000"},
    )
    try:
        blocked = runner.wait_for(event="loop.blocked")[0]
        assert blocked["job"] == "blocker"
        assert blocked["level"] == "warning"
        assert "plugins.py" in blocked["where"]
        unblocked = runner.wait_for(event="loop.unblocked")[0]
        assert unblocked["blocked_ms"] >= 1500
        runner.wait_for(event="job.finished", job="blocker")
        pings = [t for t, m in notify_socket.messages if "WATCHDOG" in m]
        wait_until(
            lambda: len([t for t, m in notify_socket.messages if "WATCHDOG" in m]) > len(pings),
            5,
            "watchdog pings to resume",
        )
        pings = [t for t, m in notify_socket.messages if "WATCHDOG" in m]
        gaps = [b - a for a, b in pairwise(pings)]
        assert max(gaps) > 1.5, gaps  # no ping while the loop was blocked
        assert runner.stop() == 0
    finally:
        runner.kill()

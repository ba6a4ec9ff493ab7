"""Stop signals from outside, as real tools send them: coreutils' ``timeout``
signals the daemon and then its own process group (the daemon again), a few
milliseconds apart. That is one request to stop, not a second one ("force");
a second signal later, or a different one, still skips the grace period."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import RunnerProcess

WriteConfig = Callable[..., Path]

needs_timeout = pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils")

#: How long Daemon.request_stop takes the same signal again as the same request.
SAME_REQUEST_WITHIN = 0.5


@pytest.fixture
def stubborn_config(write_config: WriteConfig, testplugins: Path) -> Path:
    # A service that ignores cancellation keeps the stop in its grace period
    # (5 s), so a "force" would always be seen: nothing depends on timing.
    return write_config(
        """
        history: {enabled: false}
        jobs:
          - {name: stubborn, plugin: ignores-cancel-service}
        """
    )


def stop_events(runner: RunnerProcess) -> list[str]:
    return [
        e["event"]
        for e in runner.events
        if e["event"].startswith("daemon.") and "stop" in e["event"]
    ]


@needs_timeout
def test_timeout_s_int_stops_the_daemon_once_not_by_force(stubborn_config: Path) -> None:
    # `timeout -s INT N runner serve ...`, as a person writes it. N leaves the
    # daemon time to start (it is checked below that it had).
    runner = RunnerProcess("serve", str(stubborn_config), prefix=["timeout", "-s", "INT", "4"])
    try:
        runner.wait_for(event="daemon.started", timeout=4)
        runner.wait_for(event="daemon.stopped", timeout=15)
        code = runner.proc.wait(timeout=5)
    finally:
        runner.kill()
    assert code == 124  # timeout's own: the command was timed out (and exited)
    stopping = runner.find(event="daemon.stopping")
    assert [e["reason"] for e in stopping] == ["SIGINT"]
    # The group's SIGINT comes 0.2-4 ms after the first: when the first was
    # still pending, the kernel merged them; when not, it was the same request
    # (daemon.stop_repeated). Either way, never "force".
    assert "daemon.force_stop" not in stop_events(runner)
    assert "daemon.stop_forced" not in stop_events(runner)


def test_the_same_signal_again_at_once_is_the_same_request(stubborn_config: Path) -> None:
    # What timeout does, with the first signal surely handled before the
    # second is sent (the kernel cannot merge them): the second is not "force".
    for _ in range(3):
        with RunnerProcess("serve", str(stubborn_config)) as runner:
            runner.wait_for(event="daemon.started")
            first = time.monotonic()
            runner.proc.send_signal(signal.SIGINT)
            runner.wait_for(event="daemon.stopping")
            runner.proc.send_signal(signal.SIGINT)
            second = time.monotonic()
            runner.wait_for(event="daemon.stopped", timeout=15)
            assert runner.proc.wait(timeout=5) == 0
        if second - first < SAME_REQUEST_WITHIN:
            break
        # A loaded machine took half a second to show the first one handled:
        # the second was a second request then. Again.
    else:
        pytest.fail("could not send two signals within half a second")
    assert runner.find(event="daemon.stop_repeated", reason="SIGINT")
    assert "daemon.force_stop" not in stop_events(runner)
    assert "daemon.stop_forced" not in stop_events(runner)


def test_a_second_signal_after_half_a_second_still_forces(stubborn_config: Path) -> None:
    with RunnerProcess("serve", str(stubborn_config)) as runner:
        runner.wait_for(event="daemon.started")
        first = time.monotonic()
        runner.proc.send_signal(signal.SIGINT)
        runner.wait_for(event="daemon.stopping")
        # The rule is about time itself: wait until the first signal is old enough.
        time.sleep(max(0.0, first + SAME_REQUEST_WITHIN + 0.1 - time.monotonic()))
        assert runner.stop(signal.SIGINT, timeout=4) == 0  # well within the 5 s grace
    assert stop_events(runner) == [
        "daemon.stopping",
        "daemon.force_stop",
        "daemon.stop_forced",
        "daemon.stopped",
    ]


def test_a_different_signal_at_once_still_forces(stubborn_config: Path) -> None:
    with RunnerProcess("serve", str(stubborn_config)) as runner:
        runner.wait_for(event="daemon.started")
        runner.proc.send_signal(signal.SIGTERM)
        assert runner.stop(signal.SIGINT, timeout=4) == 0
    # Sent at once, either may be handled first: the other forces.
    (stopping,) = runner.find(event="daemon.stopping")
    (forced,) = runner.find(event="daemon.force_stop")
    assert {stopping["reason"], forced["reason"]} == {"SIGTERM", "SIGINT"}
    assert runner.find(event="daemon.stop_forced")

"""The blocked-loop watcher on both event loops, in-process: it reports a
block while the loop is still stuck, whatever woke the loop (a timer, I/O),
and sleeps through an idle loop instead of looking at it every tick."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from runner.loop_monitor import LoopMonitor
from runner.loops import loop_factory

LOOPS = ["asyncio", "uvloop"]


def run_on(loop_name: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    loop = loop_factory(loop_name)()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


class Recorder(LoopMonitor):
    """Records when each report was made (the loop cannot log it while blocked)."""

    def __init__(self, threshold: float) -> None:
        super().__init__(threshold)
        self.reported_at: list[float] = []

    def _report(self, loop: asyncio.AbstractEventLoop, loop_thread: int, stale: float) -> None:
        self.reported_at.append(time.monotonic())
        super()._report(loop, loop_thread, stale)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_block_started_by_a_timer_is_reported_while_it_lasts(loop_name: str) -> None:
    async def main() -> tuple[Recorder, float, float]:
        monitor = Recorder(threshold=0.2)
        monitor.start()
        await asyncio.sleep(0.5)  # idle: the watcher sleeps until this timer
        start = time.monotonic()
        time.sleep(0.8)  # noqa: ASYNC251 (a plugin blocking the loop, on purpose)
        end = time.monotonic()
        await asyncio.sleep(0.3)
        await monitor.stop()
        return monitor, start, end

    monitor, start, end = run_on(loop_name, main)
    assert monitor.stalls == 1
    (reported,) = monitor.reported_at
    # Within threshold + tick (+ the margin after a timer), while still blocked.
    assert start + 0.2 < reported < end


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_block_started_by_io_is_reported_while_it_lasts(loop_name: str) -> None:
    async def main() -> tuple[Recorder, list[float]]:
        monitor = Recorder(threshold=0.2)
        monitor.start()
        times: list[float] = []
        done = asyncio.get_running_loop().create_future()

        class Blocker(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                times.append(time.monotonic())
                time.sleep(0.8)
                times.append(time.monotonic())
                done.set_result(None)

        left, right = socket.socketpair()
        transport, _ = await asyncio.get_running_loop().connect_accepted_socket(Blocker, left)
        await asyncio.sleep(0.6)  # idle long enough for the watcher to sleep on the loop
        await asyncio.to_thread(right.send, b"x")
        await done
        await asyncio.sleep(0.3)
        await monitor.stop()
        transport.close()
        right.close()
        await asyncio.sleep(0)
        return monitor, times

    monitor, (start, end) = run_on(loop_name, main)
    assert monitor.stalls == 1
    assert start + 0.2 < monitor.reported_at[0] < end


@pytest.mark.parametrize("loop_name", LOOPS)
def test_an_idle_loop_is_neither_probed_nor_looked_at_every_tick(loop_name: str) -> None:
    async def main() -> LoopMonitor:
        monitor = LoopMonitor(threshold=0.1)  # looks every 50 ms while the loop works
        monitor.start()
        await asyncio.sleep(0.2)  # settle: the watcher found the loop idle
        wakes = monitor.wakes
        probes = monitor.probes
        await asyncio.sleep(1.5)  # 30 ticks; one timer
        monitor.wakes -= wakes
        monitor.probes -= probes
        await monitor.stop()
        return monitor

    monitor = run_on(loop_name, main)
    assert monitor.stalls == 0
    assert monitor.probes == 0  # the loop was never woken for the watcher
    # Asleep until the loop's one timer, give or take a look or two.
    assert monitor.wakes <= 4, monitor.wakes


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_busy_loop_is_answered_without_warnings(loop_name: str) -> None:
    async def main() -> LoopMonitor:
        monitor = LoopMonitor(threshold=0.2)
        monitor.start()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # short callbacks, never one long one
            time.sleep(0.005)  # noqa: ASYNC251 (a short block, on purpose)
            await asyncio.sleep(0)
        await monitor.stop()
        return monitor

    monitor = run_on(loop_name, main)
    assert monitor.stalls == 0
    assert monitor.probes > 0

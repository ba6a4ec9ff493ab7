"""Noticing a blocked event loop, and naming the job that blocked it.

Every job shares one event loop, so a plugin that calls ``time.sleep`` or
crunches numbers stops every other job (and the systemd watchdog pings)
until it returns. The loop updates a heartbeat a few times a second; a
watcher thread checks it, and when it is older than the threshold it logs
``loop.blocked`` while the loop is still stuck, with the task running on it
(``run:JOB`` or ``plugin:JOB`` names the job) and the line it is executing. ``loop.unblocked``
follows with the total time once the loop moves again.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import traceback

from runner.log import get_logger

#: Default time the loop may be blocked before a warning.
DEFAULT_THRESHOLD = 0.5


class LoopMonitor:
    """Start with :meth:`start` from inside the loop; stop with :meth:`stop`."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold
        self.tick = min(0.1, threshold / 4)
        self._beat = time.monotonic()
        self._stopped = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._log = get_logger()
        self.stalls = 0

    @property
    def lag(self) -> float:
        """How late the loop's heartbeat is now, in seconds (0 when it is on time)."""
        return max(0.0, time.monotonic() - self._beat - self.tick)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._beat = time.monotonic()
        self._task = asyncio.create_task(self._heartbeat(), name="loop-monitor")
        self._thread = threading.Thread(
            target=self._watch,
            args=(loop, threading.get_ident()),
            name="runner-loop-monitor",
            daemon=True,
        )
        self._thread.start()

    async def stop(self) -> None:
        self._stopped.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2)

    async def _heartbeat(self) -> None:
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(self.tick)

    def _watch(self, loop: asyncio.AbstractEventLoop, loop_thread: int) -> None:
        reported_at: float | None = None
        while not self._stopped.wait(self.tick):
            beat = self._beat
            stale = time.monotonic() - beat
            if stale > self.threshold + self.tick:
                if reported_at != beat:
                    reported_at = beat
                    self.stalls += 1
                    self._report(loop, loop_thread, stale)
            elif reported_at is not None:
                blocked = self._beat - reported_at
                self._log.info("loop.unblocked", blocked_ms=round(blocked * 1000))
                reported_at = None

    def _report(self, loop: asyncio.AbstractEventLoop, loop_thread: int, stale: float) -> None:
        # Reading another thread's current task and frame is a racy snapshot,
        # which is all a diagnostic needs.
        task = asyncio.current_task(loop)
        name = task.get_name() if task is not None else None
        job = None
        if name is not None and ":" in name:
            kind, _, rest = name.partition(":")
            if kind in ("run", "plugin", "job", "service"):
                job = rest
        where = None
        frame = sys._current_frames().get(loop_thread)
        if frame is not None:
            summary = traceback.extract_stack(frame, limit=1)
            if summary:
                top = summary[-1]
                where = f"{top.filename}:{top.lineno} in {top.name}"
        self._log.warning(
            "loop.blocked",
            blocked_ms=round(stale * 1000),
            threshold_ms=round(self.threshold * 1000),
            job=job,
            task=name,
            where=where,
            hint="a plugin is blocking the event loop (time.sleep, CPU work, blocking I/O); "
            "use await asyncio.sleep / asyncio.to_thread",
        )

"""Noticing a blocked event loop, and naming the job that blocked it.

Every job shares one event loop, so a plugin that calls ``time.sleep`` or
crunches numbers stops every other job (and the systemd watchdog pings)
until it returns. A watcher thread looks at the loop a few times a second;
when the loop is in the middle of something (not waiting in its selector),
it sends a probe (``call_soon_threadsafe``) and waits for the loop to answer
it. A probe unanswered for longer than the threshold logs ``loop.blocked``
while the loop is still stuck, with the task running on it (``run:JOB``
or ``plugin:JOB`` names the job) and the line it is executing. ``loop.unblocked`` follows
with the total time once the loop moves again.

An idle loop is never woken: nothing on it polls, and the watcher's look
(whether the loop thread's top frame is the selector's ``select``) costs
microseconds. A loop ticking with a heartbeat instead cost an idle daemon
0.12 CPU s a minute.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import traceback
from types import FrameType

from runner.log import get_logger

#: Default time the loop may be blocked before a warning.
DEFAULT_THRESHOLD = 0.5


class LoopMonitor:
    """Start with :meth:`start` from inside the loop; stop with :meth:`stop`."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold
        #: How often the watcher looks; a block is noticed within threshold + tick.
        self.tick = threshold / 2
        #: When the probe the loop has not answered yet was sent (None: none waiting).
        self._probe_sent: float | None = None
        self._answered_at = 0.0
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = get_logger()
        self.stalls = 0

    @property
    def lag(self) -> float:
        """How long the loop has kept the watcher's probe waiting, in seconds
        (0 when no probe is waiting)."""
        sent = self._probe_sent
        return 0.0 if sent is None else max(0.0, time.monotonic() - sent)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._watch,
            args=(loop, threading.get_ident()),
            name="runner-loop-monitor",
            daemon=True,
        )
        self._thread.start()

    async def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2)

    def _answer(self) -> None:
        """Runs on the loop: the probe got through."""
        self._answered_at = time.monotonic()
        self._probe_sent = None

    def _watch(self, loop: asyncio.AbstractEventLoop, loop_thread: int) -> None:
        reported: float | None = None  # the probe reported as blocked
        while not self._stopped.wait(self.tick):
            sent = self._probe_sent
            if sent is not None:
                stale = time.monotonic() - sent
                if stale > self.threshold and reported != sent:
                    reported = sent
                    self.stalls += 1
                    self._report(loop, loop_thread, stale)
                continue
            if reported is not None:
                blocked = self._answered_at - reported
                self._log.info("loop.unblocked", blocked_ms=round(blocked * 1000))
                reported = None
            if _waiting_in_selector(sys._current_frames().get(loop_thread)):
                continue
            self._probe_sent = time.monotonic()
            try:
                loop.call_soon_threadsafe(self._answer)
            except RuntimeError:  # the loop closed under us: shutting down
                return

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


def _waiting_in_selector(frame: FrameType | None) -> bool:
    """Whether the loop thread is idle: blocked in the selector, not in a callback."""
    return (
        frame is not None
        and frame.f_code.co_name == "select"
        and frame.f_code.co_filename.endswith("selectors.py")
    )

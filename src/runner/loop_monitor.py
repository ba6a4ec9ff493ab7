"""Noticing a blocked event loop, and naming the job that blocked it.

Every job shares one event loop, so a plugin that calls ``time.sleep`` or
crunches numbers stops every other job (and the systemd watchdog pings)
until it returns. A watcher thread looks at the loop; when the loop is in
the middle of something (not waiting for I/O or a timer), it sends a probe
(``call_soon_threadsafe``) and waits for the loop to answer it. A probe
unanswered for longer than the threshold logs ``loop.blocked`` while the
loop is still stuck, with the task running on it (``run:JOB`` names the
job) and the line it is executing.
``loop.unblocked`` follows with the total time once the loop moves again.

A look is whether the loop thread's top Python frame is the loop's idle
frame: on asyncio's loop, ``select`` in selectors.py; on uvloop, whose loop
runs in C, the frame that called ``run_until_complete`` (found when the
watcher starts). Work that uvloop does in C without a Python frame looks
idle; every plugin and callback has one.

An idle loop costs nothing, and neither does the watcher: it does not look
a few times a second, which cost an idle daemon about 10 ms of CPU a minute
(each wake of a thread is some 40 us), but sleeps until the loop itself can
wake: on the loop's epoll descriptor (readable when I/O, a signal or a
thread's ``call_soon_threadsafe`` wakes the loop) and until the loop's next
timer. asyncio's next timer is the head of its heap; uvloop's is read from
the timeout its thread passed to ``epoll_wait`` (``/proc/self/task/TID/
syscall``) and a lower bound of when that call began, known from the
watcher's own looks and the thread's run count (``schedstat``). So a block
is noticed within threshold + tick of the loop waking, as when it looked
every tick; where none of this can be read, it looks every tick.

The loops' private parts this reads (the selector, the timer heap, the
backend descriptor, the syscall numbers, other threads' frames) are each a
function of :mod:`runner._compat`, with the figure each buys and what
happens without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import select
import threading
import time
import traceback
from types import FrameType

from runner import _compat
from runner.log import get_logger

#: Default time the loop may be blocked before a warning.
DEFAULT_THRESHOLD = 0.5

#: Frame flags of coroutines and (async) generators: the frames a task runs in.
_CO_ASYNC = (
    inspect.CO_GENERATOR
    | inspect.CO_COROUTINE
    | inspect.CO_ITERABLE_COROUTINE
    | inspect.CO_ASYNC_GENERATOR
)


class LoopMonitor:
    """Start with :meth:`start` from inside the loop; stop with :meth:`stop`."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold
        #: How often the watcher looks while the loop works; a block is noticed
        #: within threshold + tick of its start.
        self.tick = threshold / 2
        #: The longest the watcher sleeps on an idle loop without looking (a
        #: bound for the case it cannot rule out: uvloop woken by I/O and back
        #: asleep between the watcher's look and its own sleep).
        self.max_sleep = 20 * threshold
        #: When the probe the loop has not answered yet was sent (None: none waiting).
        self._probe_sent: float | None = None
        self._answered_at = 0.0
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self._log = get_logger()
        self.stalls = 0
        #: How many times the watcher woke, and how many probes it sent.
        self.wakes = 0
        self.probes = 0

    @property
    def lag(self) -> float:
        """How long the loop has kept the watcher's probe waiting, in seconds
        (0 when no probe is waiting)."""
        sent = self._probe_sent
        return 0.0 if sent is None else max(0.0, time.monotonic() - sent)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._wake_r, self._wake_w = os.pipe()
        here = inspect.currentframe()
        caller = here.f_back if here is not None else None
        sleeper = _Sleeper.for_loop(loop, self, _idle_frame(loop, caller))
        self._thread = threading.Thread(
            target=self._watch,
            args=(loop, threading.get_ident(), sleeper),
            name="runner-loop-monitor",
            daemon=True,
        )
        self._thread.start()

    async def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2)
            if not self._thread.is_alive():
                for fd in (self._wake_r, self._wake_w):
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def _answer(self) -> None:
        """Runs on the loop: the probe got through."""
        self._answered_at = time.monotonic()
        self._probe_sent = None

    def _watch(self, loop: asyncio.AbstractEventLoop, loop_thread: int, sleeper: _Sleeper) -> None:
        reported: float | None = None  # the probe reported as blocked
        try:
            while sleeper.sleep():
                self.wakes += 1
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
                if sleeper.idle(_compat.current_frames().get(loop_thread)):
                    continue
                self._probe_sent = time.monotonic()
                self.probes += 1
                try:
                    loop.call_soon_threadsafe(self._answer)
                except RuntimeError:  # the loop closed under us: shutting down
                    return
        finally:
            sleeper.close()

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
        frame = _compat.current_frames().get(loop_thread)
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


def _idle_frame(loop: asyncio.AbstractEventLoop, frame: FrameType | None) -> FrameType | None:
    """For a loop that runs in C (uvloop): the frame its thread shows while the
    loop waits, the one that called ``run_until_complete``; None for asyncio's.

    ``frame`` is a frame of the task calling :meth:`LoopMonitor.start`: the
    first frame out from it that is not a coroutine's is where the loop
    was entered (on asyncio's loop, its ``Handle._run``).
    """
    if isinstance(loop, asyncio.BaseEventLoop):
        return None
    while frame is not None and frame.f_code.co_flags & _CO_ASYNC:
        frame = frame.f_back
    return frame


# --------------------------------------------------------------------------- sleeping


class _Sleeper:
    """When the watcher looks next. This base looks every tick; subclasses
    sleep through an idle loop's quiet until it can wake."""

    def __init__(self, monitor: LoopMonitor) -> None:
        self.monitor = monitor
        self.tick = monitor.tick
        self._poll = select.poll()
        self._poll.register(monitor._wake_r, select.POLLIN)
        self._timeout = self.tick

    @staticmethod
    def for_loop(
        loop: asyncio.AbstractEventLoop, monitor: LoopMonitor, idle_frame: FrameType | None
    ) -> _Sleeper:
        if isinstance(loop, asyncio.BaseEventLoop):
            epoll_fd = _compat.asyncio_epoll_fd(loop)
            if epoll_fd is not None and _compat.asyncio_next_wake(loop) is not None:
                return _AsyncioSleeper(monitor, loop, epoll_fd)
            return _Sleeper(monitor)
        if idle_frame is None:
            return _NeverIdle(monitor)
        if _compat.EPOLL_WAIT_SYSCALLS:
            with contextlib.suppress(OSError, ValueError):
                epoll_fd = _compat.uvloop_epoll_fd(loop)
                if epoll_fd is not None:
                    native_id = threading.get_native_id()
                    return _UvloopSleeper(monitor, idle_frame, epoll_fd, native_id)
        return _FrameSleeper(monitor, idle_frame)

    def sleep(self) -> bool:
        """Wait until the next look; False once the monitor stops."""
        timeout, self._timeout = self._timeout, self.tick
        events = self._poll.poll(timeout * 1000)
        return not self.monitor._stopped.is_set() and not any(
            fd == self.monitor._wake_r for fd, _ in events
        )

    def idle(self, frame: FrameType | None) -> bool:
        """Whether the loop waits for I/O or a timer; if so, sleep until it can wake."""
        return _compat.asyncio_waits_in_selector(frame)

    def close(self) -> None:
        pass


class _NeverIdle(_Sleeper):
    """A loop whose idle frame is unknown: every look probes (costs a wake of the loop)."""

    def idle(self, frame: FrameType | None) -> bool:
        return False


class _FrameSleeper(_Sleeper):
    """uvloop where its epoll wait cannot be read: looks every tick."""

    def __init__(self, monitor: LoopMonitor, idle_frame: FrameType) -> None:
        super().__init__(monitor)
        self.idle_frame = idle_frame

    def idle(self, frame: FrameType | None) -> bool:
        return frame is self.idle_frame


class _EpollSleeper(_Sleeper):
    """Sleeps on the loop's epoll descriptor, until its next timer."""

    def __init__(self, monitor: LoopMonitor, epoll_fd: int) -> None:
        super().__init__(monitor)
        self._idle_poll = select.poll()
        self._idle_poll.register(monitor._wake_r, select.POLLIN)
        self._idle_poll.register(epoll_fd, select.POLLIN)
        self._epoll_fd = epoll_fd
        self._sleep_until: float | None = None  # set: the next sleep is on the loop
        self._quiet_until: float | None = None  # the loop cannot wake before, but for I/O

    def sleep(self) -> bool:
        until, self._sleep_until = self._sleep_until, None
        quiet, self._quiet_until = self._quiet_until, None
        if until is None:
            return super().sleep()
        timeout = max(0.0, until - time.monotonic())
        events = self._idle_poll.poll(timeout * 1000)
        if self.monitor._stopped.is_set() or any(fd == self.monitor._wake_r for fd, _ in events):
            return False
        if events:  # the loop is waking for I/O: look once it had a tick to run
            self.woken(time.monotonic())
            return super().sleep()
        if quiet is not None:
            self.timed_out(quiet)
        return True

    def sleep_on_loop(self, seconds: float | None) -> None:
        """Let the next sleep last ``seconds`` (None: until the loop wakes) plus a
        margin for the loop's own wake, or only a tick if that is less."""
        now = time.monotonic()
        margin = self.tick / 5
        self._quiet_until = None if seconds is None or seconds <= 0 else now + seconds
        if seconds is None:
            seconds = self.monitor.max_sleep
        self._sleep_until = now + max(self.tick, min(seconds + margin, self.monitor.max_sleep))

    def woken(self, now: float) -> None:
        pass

    def timed_out(self, at: float) -> None:
        pass


class _AsyncioSleeper(_EpollSleeper):
    """asyncio's loop: its next timer is the head of its timer heap."""

    def __init__(self, monitor: LoopMonitor, loop: asyncio.BaseEventLoop, epoll_fd: int) -> None:
        super().__init__(monitor, epoll_fd)
        self.loop = loop

    def idle(self, frame: FrameType | None) -> bool:
        if not _compat.asyncio_waits_in_selector(frame):
            return False
        # Racy reads of the loop's state, but the loop thread waits in select
        # without moving, and the watcher holds the GIL: no callback can run.
        wake = _compat.asyncio_next_wake(self.loop)
        if wake is None:
            return True  # look again after a tick
        ready, when = wake
        if not ready:
            self.sleep_on_loop(None if when is None else when - self.loop.time())
        return True


class _UvloopSleeper(_EpollSleeper):
    """uvloop: libuv's next timer is the timeout its thread passed to epoll_wait,
    counted from when that call began; of that, a lower bound is the last
    moment the watcher knew the thread was not in it yet: a look that saw it
    busy, the loop's epoll becoming readable, a read of its run count
    before a read that found the count grown, or the end of a sleep that
    ended before the loop could wake."""

    def __init__(
        self, monitor: LoopMonitor, idle_frame: FrameType, epoll_fd: int, native_id: int
    ) -> None:
        super().__init__(monitor, epoll_fd)
        self.idle_frame = idle_frame
        task = f"/proc/self/task/{native_id}"
        self._syscall = os.open(f"{task}/syscall", os.O_RDONLY)
        self._schedstat = os.open(f"{task}/schedstat", os.O_RDONLY)
        self._runs = -1  # the thread's run count at the last read
        self._read_at = time.monotonic()  # when that was
        self._since = self._read_at  # the current wait began after this

    def close(self) -> None:
        for fd in (self._syscall, self._schedstat):
            with contextlib.suppress(OSError):
                os.close(fd)

    def woken(self, now: float) -> None:
        # The wait that comes next begins after the loop ran for this I/O.
        self._since = max(self._since, now - self.tick)

    def timed_out(self, at: float) -> None:
        # Slept up to at most the loop's wake: its run count was the same then.
        self._read_at = max(self._read_at, at)

    def idle(self, frame: FrameType | None) -> bool:
        now = time.monotonic()
        if frame is not self.idle_frame:
            self._since = now  # running Python: not waiting yet
            return False
        try:
            runs = int(os.pread(self._schedstat, 128, 0).split()[2])
            call = os.pread(self._syscall, 256, 0).split()
        except (OSError, ValueError, IndexError):
            return True
        if runs != self._runs:
            self._since = max(self._since, self._read_at)
            self._runs = runs
        self._read_at = now
        waiting = len(call) >= 5 and call[0].isdigit()
        if not waiting or int(call[0]) not in _compat.EPOLL_WAIT_SYSCALLS:
            return True  # running in C, or not in epoll_wait: look again after a tick
        timeout_ms = int(call[4], 16)
        if timeout_ms >= 2**31:  # -1 as an unsigned int: no timer, only I/O wakes it
            self.sleep_on_loop(None)
        else:
            self.sleep_on_loop(self._since + timeout_ms / 1000 - now)
        return True

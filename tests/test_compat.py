"""Each private part of a dependency that runner._compat reads, held to the
shape it is used in, on real loops (asyncio's and uvloop).

When one of these fails after an upgrade, the message names the dependency
and its version: read that function's docstring in src/runner/_compat.py
for what it buys and what runner does without it, then fix _compat (or drop
the name) before raising the version bound in pyproject.toml.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from types import FrameType

import pytest
import uvloop

from runner import _compat

LINUX = sys.platform == "linux"
PYTHON = f"Python {sys.version.split()[0]} ({sys.implementation.name})"
UVLOOP = f"uvloop {version('uvloop')}"
STRUCTLOG = f"structlog {version('structlog')}"


def _is_epoll(fd: int) -> bool:
    return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventpoll]"


@dataclass
class LoopThread:
    loop: asyncio.AbstractEventLoop
    ident: int
    native_id: int
    entry: FrameType  # the frame that called run_until_complete


@contextmanager
def loop_in_thread(factory: Callable[[], asyncio.AbstractEventLoop]) -> Iterator[LoopThread]:
    """A loop running in a thread of its own, idle, its one timer 30 s away."""
    started = threading.Event()
    box: list[tuple[LoopThread, asyncio.Future[None]]] = []

    def run() -> None:
        loop = factory()

        async def main() -> None:
            done = loop.create_future()
            running = LoopThread(loop, threading.get_ident(), threading.get_native_id(), entry)
            box.append((running, done))
            loop.call_later(30, lambda: None)
            started.set()
            await done

        entry = inspect.currentframe()
        assert entry is not None
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="compat-loop", daemon=True)
    thread.start()
    assert started.wait(10), "the loop did not start"
    running, done = box[0]
    try:
        yield running
    finally:
        running.loop.call_soon_threadsafe(done.set_result, None)
        thread.join(10)


def wait_for(condition: Callable[[], bool], what: Callable[[], str], timeout: float = 5.0) -> None:
    """Wait until ``condition()``; past the deadline, fail saying ``what()``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what()
        time.sleep(0.005)


# --------------------------------------------------------------------------- structlog


def test_structlog_imports_without_rich_and_greenlet_and_they_stay_importable() -> None:
    code = (
        "import sys, runner, structlog\n"
        "print(sorted(n for n in ('rich', 'greenlet') if n in sys.modules))\n"
        "import rich.console\n"
        "structlog.dev.ConsoleRenderer(colors=False)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split("\n")[:2] == ["[]", "ok"], (
        f"{STRUCTLOG}: importing structlog with {_compat.HIDDEN_FROM_STRUCTLOG} hidden "
        f"(runner._compat._import_structlog_without_rich) no longer works as it did: "
        f"{done.stdout}{done.stderr}"
    )


def test_structlog_still_imports_rich_at_its_own_import() -> None:
    """Otherwise hiding rich buys nothing and can go (a change for the better)."""
    code = "import sys, structlog\nprint('rich' in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "True", (
        f"{STRUCTLOG} no longer imports rich when imported: "
        "runner._compat._import_structlog_without_rich is not needed any more"
    )


# --------------------------------------------------------------------------- CPython


def test_current_frames_gives_each_threads_top_frame() -> None:
    assert hasattr(sys, "_current_frames"), (
        f"{PYTHON} has no sys._current_frames: the blocked-loop watcher probes the "
        "loop every tick and loop.blocked has no `where` (runner._compat.current_frames)"
    )
    release = threading.Event()

    def parked() -> None:
        release.wait(10)

    thread = threading.Thread(target=parked, daemon=True)
    thread.start()
    try:
        wanted = parked.__code__

        def top_code_names() -> list[str]:
            frame = _compat.current_frames().get(thread.ident or 0)
            names = []
            while frame is not None:
                names.append(frame.f_code.co_name)
                if frame.f_code is wanted:
                    return []
                frame = frame.f_back
            return names or ["(no frame)"]

        wait_for(
            lambda: not top_code_names(),
            lambda: (
                f"{PYTHON}: sys._current_frames() no longer gives another thread's "
                f"frames (its stack: {top_code_names()})"
            ),
        )
    finally:
        release.set()
        thread.join(10)


# --------------------------------------------------------------------------- asyncio


@pytest.mark.skipif(not LINUX, reason="asyncio's loop uses epoll on Linux only")
def test_asyncio_loop_has_an_epoll_selector() -> None:
    loop = asyncio.new_event_loop()
    try:
        fd = _compat.asyncio_epoll_fd(loop)
        assert fd is not None and _is_epoll(fd), (
            f"{PYTHON}: asyncio's loop no longer has an EpollSelector as `_selector` "
            f"(found {type(getattr(loop, '_selector', None))!r}): the blocked-loop "
            "watcher looks every tick (runner._compat.asyncio_epoll_fd)"
        )
    finally:
        loop.close()


def test_asyncio_loop_ready_queue_and_timer_heap() -> None:
    async def main() -> tuple[object, object]:
        loop = asyncio.get_running_loop()
        timer = loop.call_later(5, lambda: None)
        soon = loop.call_soon(lambda: None)
        with_ready = _compat.asyncio_next_wake(loop)
        soon.cancel()
        await asyncio.sleep(0)  # the cancelled callback leaves the ready queue
        only_timer = _compat.asyncio_next_wake(loop)
        expected = timer.when()
        timer.cancel()
        return (with_ready, expected), only_timer

    (with_ready, expected), only_timer = asyncio.run(main())
    shape = f"{PYTHON}: asyncio's loop `_ready` (a deque) and `_scheduled` (a heap of TimerHandle)"
    assert with_ready is not None and only_timer is not None, (
        f"{shape} cannot be read any more: the watcher looks every tick "
        "(runner._compat.asyncio_next_wake)"
    )
    assert with_ready == (True, expected), f"{shape} changed: {with_ready!r}"
    assert only_timer == (False, expected), f"{shape} changed: {only_timer!r}"


def test_asyncio_loop_waits_in_the_selectors_select() -> None:
    with loop_in_thread(asyncio.new_event_loop) as running:
        seen: list[FrameType | None] = [None]

        def idle() -> bool:
            seen[0] = _compat.current_frames().get(running.ident)
            return _compat.asyncio_waits_in_selector(seen[0])

        def what() -> str:
            top = seen[0]
            where = f"{top.f_code.co_filename}:{top.f_code.co_name}" if top else None
            return (
                f"{PYTHON}: an idle asyncio loop's thread never showed selectors.py's "
                f"`select` as its top frame (last seen: {where}): the watcher would probe "
                "it every tick (runner._compat.asyncio_waits_in_selector)"
            )

        wait_for(idle, what)


# --------------------------------------------------------------------------- uvloop


@pytest.mark.skipif(not LINUX, reason="libuv uses epoll on Linux only")
def test_uvloop_backend_is_its_epoll_descriptor() -> None:
    loop = uvloop.new_event_loop()
    try:
        assert hasattr(loop, "_get_backend_id"), (
            f"{UVLOOP} has no Loop._get_backend_id: the watcher looks every tick on "
            "uvloop (runner._compat.uvloop_epoll_fd)"
        )
        fd = _compat.uvloop_epoll_fd(loop)
        assert fd is not None and _is_epoll(fd), (
            f"{UVLOOP}: Loop._get_backend_id() is no longer libuv's epoll descriptor ({fd!r})"
        )
    finally:
        loop.close()


@pytest.mark.skipif(not LINUX, reason="/proc/TID/syscall is Linux's")
def test_uvloop_waits_in_epoll_wait_with_its_next_timer_as_timeout() -> None:
    assert _compat.EPOLL_WAIT_SYSCALLS, (
        f"no epoll_wait syscall numbers known for {os.uname().machine}: add them to "
        "runner._compat._epoll_wait_syscalls, or the watcher looks every tick on uvloop"
    )
    seen: list[bytes] = []

    def waiting(native_id: int) -> bool:
        with open(f"/proc/self/task/{native_id}/syscall", "rb") as f:
            call = f.read().split()
        seen.append(b" ".join(call[:5]))
        # The loop's one timer is 30 s away: the timeout (ms) is at most that.
        return (
            len(call) >= 5
            and call[0].isdigit()
            and int(call[0]) in _compat.EPOLL_WAIT_SYSCALLS
            and 0 < int(call[4], 16) <= 30_000
        )

    with loop_in_thread(uvloop.new_event_loop) as running:
        wait_for(
            lambda: waiting(running.native_id),
            lambda: (
                f"{UVLOOP}: its idle thread was never seen in epoll_wait/epoll_pwait "
                f"({sorted(_compat.EPOLL_WAIT_SYSCALLS)}) with its next timer as the timeout "
                f"(last seen: {seen[-1:]!r}): libuv may wait with another call now; the "
                "watcher then looks every tick on uvloop (runner._compat.EPOLL_WAIT_SYSCALLS)"
            ),
        )


def test_uvloop_idle_thread_shows_the_frame_that_entered_the_loop() -> None:
    """Not a private name, but uvloop's behaviour the watcher's idle check
    rests on (runner.loop_monitor._idle_frame): its loop runs in C, so an
    idle thread's top Python frame is the one that called run_until_complete."""
    with loop_in_thread(uvloop.new_event_loop) as running:
        wait_for(
            lambda: _compat.current_frames().get(running.ident) is running.entry,
            lambda: (
                f"{UVLOOP}: an idle loop's thread never showed the frame that called "
                "run_until_complete as its top frame: the watcher would probe it every tick"
            ),
        )

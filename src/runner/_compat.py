"""Every private part of a dependency (or of CPython) that the core relies on.

One function per name, and nothing else reaches past a library's public API
outside this module (the built-in plugins have ``runner.builtins._compat``).
Each says why it is needed, what it buys (a figure from bench/), and what
happens when an upgrade takes it away. ``tests/test_compat.py`` holds each
one to the shape it is used for, on a real loop, and fails naming the
dependency and its version when an upgrade changes it; pyproject.toml bounds
those dependencies above so that an upgrade is a decision, not an accident.

Public names that merely start with ``_`` are not here: ``os._exit`` and a
named tuple's ``_replace`` are documented API.

This module is imported first by ``runner/__init__.py`` (the structlog import
below must come before anything else imports structlog), so it imports
nothing at its top but ``os`` and ``sys``.
"""

from __future__ import annotations

import os
import sys
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "EPOLL_WAIT_SYSCALLS",
    "HIDDEN_FROM_STRUCTLOG",
    "asyncio_epoll_fd",
    "asyncio_next_wake",
    "asyncio_waits_in_selector",
    "current_frames",
    "uvloop_epoll_fd",
]


# --------------------------------------------------------------------------- structlog

#: Imported by structlog when installed, and not needed by runner's use of it.
HIDDEN_FROM_STRUCTLOG = ("rich", "greenlet")


def _import_structlog_without_rich() -> None:
    """Import structlog with ``rich`` and ``greenlet`` hidden from that one import.

    Relies on: structlog importing rich (``structlog.dev``, ``structlog.
    tracebacks``) and greenlet (``structlog.threadlocal``, where it still
    exists) at its own import, each inside ``try: ... except ImportError``
    (a ``None`` in ``sys.modules`` makes the import raise ImportError).
    Afterwards both are importable as ever: ``runner.report`` imports rich
    when it prints a table, Playwright imports greenlet.

    Buys: rich.console, rich.traceback, rich.pretty, pygments and attrs are
    30-40 ms of every start of the daemon, a sixth of ``runner serve``'s time
    to its first echo (bench/footprint.py; README "Start-up cost"), for
    output an echo-and-sleep config never writes. What changes: the console
    format prints a logged exception as Python's plain traceback, and
    ``dict_tracebacks`` renders a frame's locals with ``repr()`` cut at 80
    characters instead of rich's pretty form.

    Missing: if structlog stops catching the ImportError, ``import runner``
    fails with structlog's own traceback (loud; test_compat names the
    version); if it imports rich lazily instead, this does nothing and costs
    nothing. If something imported structlog before runner, structlog keeps
    what it found then and this does nothing.
    """
    if "structlog" in sys.modules:
        return
    hidden = [name for name in HIDDEN_FROM_STRUCTLOG if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import structlog  # noqa: F401
    finally:
        for name in hidden:
            del sys.modules[name]


_import_structlog_without_rich()


# --------------------------------------------------------------------------- CPython

_current_frames = getattr(sys, "_current_frames", None)


def current_frames() -> dict[int, FrameType]:
    """Every thread's top frame, by thread id: ``sys._current_frames()``.

    Needed by the blocked-loop watcher (runner.loop_monitor), which runs in a
    thread of its own: whether the loop's thread is idle (waiting in its
    selector) is read from that thread's top frame, and ``loop.blocked`` says
    which line the loop is stuck on. No public API gives another thread's
    frame (``faulthandler`` only writes text to a file). Documented in
    :mod:`sys` as CPython's, "for internal and specialized purposes only".

    Buys: an idle loop is neither probed nor woken; without the frame every
    look probes the loop, as the watcher did before the idle work: 20 ms of
    CPU per idle minute against 0.6-0.8 ms (bench/README.md, "idle").

    Missing (not CPython): an empty dict. The watcher then treats the loop
    as busy on every look (probes every tick, the 20 ms a minute above) and
    ``loop.blocked`` has ``where=None``: a documented degraded mode, still
    correct.
    """
    return _current_frames() if _current_frames is not None else {}


# --------------------------------------------------------------------------- asyncio


def asyncio_epoll_fd(loop: asyncio.AbstractEventLoop) -> int | None:
    """The epoll descriptor of asyncio's selector loop: ``loop._selector.fileno()``.

    Needed by the watcher to sleep until the loop itself can wake (readable
    when I/O, a signal or ``call_soon_threadsafe`` wakes it); asyncio offers
    no public way to the selector a loop was made with.

    Buys (with :func:`asyncio_next_wake`): an idle daemon's watcher wakes
    six times a minute instead of 240: 0.6-0.7 ms of CPU per idle minute
    against 20 ms (bench/idle.py, bench/README.md "idle": 0.034x).

    Missing, or not an ``EpollSelector`` (not Linux, another selector):
    None, and the watcher looks every tick (the 20 ms a minute above).
    """
    import selectors

    selector = getattr(loop, "_selector", None)
    if isinstance(selector, selectors.EpollSelector):
        return selector.fileno()
    return None


def asyncio_next_wake(loop: asyncio.AbstractEventLoop) -> tuple[bool, float | None] | None:
    """(whether callbacks are ready to run, when the loop's next timer is due,
    on ``loop.time()``'s clock, None for no timer), read from ``loop._ready``
    (a deque of handles) and ``loop._scheduled`` (a heap of TimerHandles).

    Needed by the watcher: an idle loop sleeps until its next timer, and
    asyncio has no public "next timer" (``loop.time()`` is the clock only).
    Read from the watcher's thread while the loop's thread waits in select
    (racy, but no callback can run while the watcher holds the GIL).

    Buys: see :func:`asyncio_epoll_fd` (0.034x the idle CPU).

    Missing or changed (another shape): None, and the watcher looks again
    after a tick instead of sleeping until the timer: correct, and as costly
    as looking every tick.
    """
    try:
        ready = bool(loop._ready)  # type: ignore[attr-defined]
        scheduled = loop._scheduled  # type: ignore[attr-defined]
        when = scheduled[0].when() if scheduled else None
    except (AttributeError, IndexError, TypeError):
        return None
    return ready, when


def asyncio_waits_in_selector(frame: FrameType | None) -> bool:
    """Whether asyncio's loop thread is idle: its top frame is the selector's
    ``select`` (``selectors.py``), where ``BaseEventLoop._run_once`` waits.

    Needed by the watcher to tell an idle loop from one running a callback;
    the loop has no public "am I waiting" (``loop.is_running()`` is true for
    both).

    Buys: an idle loop is not probed (a probe is a wake of the loop and of
    the watcher; see :func:`current_frames`).

    Changed (the loop waits elsewhere): False on every look, so the loop is
    probed every tick: correct, 20 ms of CPU per idle minute.
    """
    return (
        frame is not None
        and frame.f_code.co_name == "select"
        and frame.f_code.co_filename.endswith("selectors.py")
    )


# --------------------------------------------------------------------------- uvloop


def uvloop_epoll_fd(loop: asyncio.AbstractEventLoop) -> int | None:
    """The epoll descriptor of libuv's loop under uvloop: ``loop._get_backend_id()``.

    Needed, as on asyncio's loop, to sleep until the loop can wake; uvloop
    has no public accessor (it is libuv's ``uv_backend_fd``).

    Buys: an idle uvloop daemon's watcher costs 0.7-0.8 ms of CPU per minute
    against 20 ms looking every tick (bench/README.md "idle": 0.039x).

    Missing: None, and the watcher looks every tick on uvloop.
    """
    backend = getattr(loop, "_get_backend_id", None)
    if backend is None:
        return None
    fd = backend()
    return fd if isinstance(fd, int) and fd >= 0 else None


def _epoll_wait_syscalls() -> frozenset[int]:
    machine = os.uname().machine if sys.platform == "linux" else ""
    return frozenset({"x86_64": {232, 281}, "aarch64": {22}}.get(machine, set()))


#: The Linux system call numbers of ``epoll_wait`` and ``epoll_pwait`` (whose 4th
#: argument is the timeout in ms) on this machine; empty where unknown.
#:
#: Needed on uvloop: libuv's next timer is the timeout its thread passed to
#: epoll_wait, read from ``/proc/self/task/TID/syscall`` (the call's number,
#: then its arguments); a number not in this set means "not waiting in epoll".
#: These numbers are the kernel's ABI and never change; what can change is
#: libuv choosing another call (``epoll_pwait2``, io_uring), which
#: test_compat catches on a real uvloop.
#:
#: Buys: the uvloop figure of :func:`uvloop_epoll_fd`. Empty (another
#: machine or OS) or another call: the watcher looks every tick on uvloop.
EPOLL_WAIT_SYSCALLS = _epoll_wait_syscalls()

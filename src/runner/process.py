"""Running the daemon's event loop so that no plugin can keep the process alive.

:func:`asyncio.run` ends by cancelling every task left and waiting for all of
them, without a bound: one plugin that catches ``CancelledError`` and goes on
makes SIGTERM hang until the process is killed. :func:`run` does the same
clean-up within a grace period and, when something is still running after
it (an abandoned run, a thread blocked in a plugin), flushes the output and
ends the process with the exit code anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from runner.execution import AbandonedRuns
from runner.log import flush_lines, get_logger, hold_lines

#: How long tasks and threads left at the end get to finish.
LEFTOVER_GRACE = 2.0


T = TypeVar("T")

#: Set when a loop's clean-up left something running.
_stuck = False


def run(
    main: Coroutine[Any, Any, T],
    *,
    grace: float = LEFTOVER_GRACE,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
    abandoned: AbandonedRuns | None = None,
) -> T:
    """Run ``main`` to completion on a new event loop (made by ``loop_factory``:
    asyncio's or uvloop's, see :mod:`runner.loops`) and return its result;
    the clean-up afterwards takes at most about ``grace`` seconds. Call
    :func:`exit_if_stuck` once the result has been used. ``abandoned``: the
    runs ``main`` left behind, counted in the log if the clean-up is stuck."""
    global _stuck
    loop = loop_factory()
    asyncio.set_event_loop(loop)
    clean = False
    try:
        with hold_lines(loop):
            try:
                code = loop.run_until_complete(main)
            finally:
                clean = loop.run_until_complete(_clean_up(loop, grace, abandoned))
    finally:
        asyncio.set_event_loop(None)
        if clean:
            loop.close()
    _stuck = _stuck or not clean
    return code


def exit_if_stuck(code: int) -> None:
    """End the process now with ``code`` if :func:`run` left something running.

    Something a plugin started will not end: do not wait for it (the
    interpreter would join its threads forever at exit).
    """
    if _stuck:
        flush_lines()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


async def _clean_up(
    loop: asyncio.AbstractEventLoop, grace: float, abandoned: AbandonedRuns | None
) -> bool:
    """Cancel what is left, wait up to ``grace``; True if everything ended."""
    me = asyncio.current_task()
    left = [t for t in asyncio.all_tasks(loop) if t is not me and not t.done()]
    for task in left:
        task.cancel()
    clean = True
    if left:
        _, pending = await asyncio.wait(left, timeout=grace)
        if pending:
            clean = False
            get_logger().warning(
                "daemon.left_running",
                tasks=sorted(t.get_name() for t in pending),
                abandoned_runs=abandoned.count if abandoned is not None else 0,
                hint="plugins that ignore cancellation; the process exits without them",
            )
    for step in (loop.shutdown_asyncgens(), loop.shutdown_default_executor()):
        try:
            await asyncio.wait_for(step, grace)
        except TimeoutError:
            clean = False
        except Exception:  # an async generator whose aclose() raised: not our concern now
            pass
    return clean

"""Running one check once: timeout, exceptions and timing in one place.

The scheduler, ``runner run`` and the testing helpers all go through
:func:`run_check_once`, so a result means the same thing everywhere.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from runner.plugin import Check, Result, RunContext, Status
from runner.resources import Resources
from runner.results import RunRecord


async def run_check_once(
    check: Check[Any],
    *,
    job: str,
    plugin: str,
    timeout: float,
    resources: Resources,
) -> RunRecord:
    """Run ``check`` once within ``timeout`` seconds and never raise for its failures.

    A run past the timeout is cancelled and becomes a ``timeout`` result; an
    exception becomes an ``error`` result naming its type. Cancellation of the
    caller (daemon shutdown) still propagates.
    """
    loop = asyncio.get_running_loop()
    started_at = time.time()
    started = time.perf_counter()
    ctx = RunContext(
        job=job, plugin=plugin, resources=resources, timeout=timeout, deadline=loop.time() + timeout
    )
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            result = await check.run(ctx)
        if deadline.expired():
            # The plugin swallowed the cancellation and returned anyway: too late.
            result = Result(Status.TIMEOUT, f"no result within the job's timeout of {timeout:g}s")
        elif not isinstance(result, Result):
            result = Result.error(
                f"plugin returned {type(result).__name__}, not a runner.plugin.Result",
                error_type="TypeError",
            )
    except TimeoutError as exc:
        if deadline.expired():
            result = Result(Status.TIMEOUT, f"no result within the job's timeout of {timeout:g}s")
        else:
            # A TimeoutError of the plugin's own (a library's shorter timeout):
            # still a target that did not answer in time.
            result = Result(Status.TIMEOUT, _describe(exc), {"error_type": type(exc).__name__})
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        result = Result.error(_describe(exc), error_type=type(exc).__name__)
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    return RunRecord.of(job, plugin, result, started_at=started_at, duration_ms=duration_ms)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__

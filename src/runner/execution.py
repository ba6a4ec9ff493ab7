"""Running one check once: timeout, exceptions and timing in one place.

The scheduler, ``runner run`` and the testing helpers all go through
:func:`run_check_once`, so a result means the same thing everywhere.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any

from runner.plugin import Check, Result, RunContext, Status
from runner.resources import Resources
from runner.results import RunRecord


@dataclass(frozen=True)
class Retry:
    """How a failed attempt is tried again within the same run (``retries:``).

    ``delay`` is the pause before each retry; ``exponential`` doubles it each
    time, up to ``max_delay``. Every attempt and pause fits in the job's
    timeout: a retry that could not start before it is not made.
    """

    retries: int = 0
    delay: float = 1.0
    exponential: bool = False
    max_delay: float = 30.0

    def pause_before(self, attempt: int) -> float:
        """The pause before attempt number ``attempt`` (2 for the first retry)."""
        if not self.exponential:
            return self.delay
        return min(self.delay * 2.0 ** (attempt - 2), self.max_delay)


NO_RETRY = Retry()


async def run_check_once(
    check: Check[Any],
    *,
    job: str,
    plugin: str,
    timeout: float,
    resources: Resources,
    retry: Retry = NO_RETRY,
) -> RunRecord:
    """Run ``check`` within ``timeout`` seconds (retried as ``retry`` says) and never
    raise for its failures.

    A run past the timeout is cancelled and becomes a ``timeout`` result; an
    exception becomes an ``error`` result naming its type. With retries, the
    record says how many ``attempts`` it took and, in the ``attempt_errors``
    field, what each earlier attempt got. Cancellation of the caller (daemon
    shutdown) still propagates.
    """
    loop = asyncio.get_running_loop()
    started_at = time.time()
    started = time.perf_counter()
    deadline_at = loop.time() + timeout
    ctx = RunContext(
        job=job, plugin=plugin, resources=resources, timeout=timeout, deadline=deadline_at
    )
    deadline = asyncio.timeout_at(deadline_at)
    earlier: list[str] = []
    attempt = 0
    result = Result(Status.TIMEOUT, f"no result within the job's timeout of {timeout:g}s")
    try:
        async with deadline:
            while True:
                attempt += 1
                result = await _attempt(check, ctx, deadline)
                if result.status is Status.OK or attempt > retry.retries:
                    break
                pause = retry.pause_before(attempt + 1)
                if loop.time() + pause >= deadline_at:
                    break  # no time left for another attempt
                earlier.append(_summary(result))
                await asyncio.sleep(pause)
        if deadline.expired():
            # The plugin swallowed the cancellation and returned anyway: too late.
            result = Result(Status.TIMEOUT, f"no result within the job's timeout of {timeout:g}s")
    except TimeoutError:
        result = Result(Status.TIMEOUT, f"no result within the job's timeout of {timeout:g}s")
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    record = RunRecord.of(
        job, plugin, result, started_at=started_at, duration_ms=duration_ms, attempts=attempt
    )
    return replace(record, attempt_errors=tuple(earlier)) if earlier else record


async def _attempt(check: Check[Any], ctx: RunContext, deadline: asyncio.Timeout) -> Result:
    """One call of ``check.run``; its failures become results, the deadline's do not."""
    try:
        result = await check.run(ctx)
    except TimeoutError as exc:
        if deadline.expired():
            raise
        # A TimeoutError of the plugin's own (a library's shorter timeout):
        # still a target that did not answer in time.
        return Result(Status.TIMEOUT, _describe(exc), {"error_type": type(exc).__name__})
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return Result.error(_describe(exc), error_type=type(exc).__name__)
    if not isinstance(result, Result):
        return Result.error(
            f"plugin returned {type(result).__name__}, not a runner.plugin.Result",
            error_type="TypeError",
        )
    return result


def _summary(result: Result) -> str:
    return f"{result.status.value}: {result.message}" if result.message else result.status.value


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__

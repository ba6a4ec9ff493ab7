"""Running one check: its attempts, timeout, retries and abandonment, in one function.

:func:`run_attempts` is the one run of a check, for ``runner serve`` (the
scheduler's ticker runs it in each run's task), ``runner run`` (the same
run, through :meth:`runner.scheduler.Scheduler.run_once`) and
:func:`runner.testing.run_check` (through :func:`run_in_task`), so a result
means the same thing everywhere. A run's record leaves it through one call,
its ``deliver``, made once: when the run ends, or when it is abandoned.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields, replace
from typing import Any

from runner.errors import describe_error
from runner.log import get_logger
from runner.model import NO_RETRY, Retry, RunRecord
from runner.plugin import Check, Result, RunContext, Status
from runner.resources import Resources
from runner.safe_json import json_safe, text

#: How long a cancelled run gets to end before it is abandoned.
CANCEL_GRACE = 1.0

#: Where a run's record goes (once: at the run's end or at its abandonment).
Deliver = Callable[[RunRecord], object]


class AbandonedRuns:
    """Runs whose plugin ignored cancellation: left to die, counted, logged once per plugin.

    Their tasks are kept here (a task nobody references may be collected
    mid-flight) until they end, if they ever do; nothing waits for them. The
    scheduler owns one (``Scheduler.abandoned``) and passes it to each run.
    """

    def __init__(self) -> None:
        #: Runs abandoned so far.
        self.count = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self._logged: set[str] = set()

    def add(self, task: asyncio.Task[Any], *, job: str, plugin: str) -> None:
        """Leave ``task`` behind: count it, keep it referenced, log the first of ``plugin``."""
        self.count += 1
        self.tasks.add(task)
        task.add_done_callback(self._ended)
        if plugin not in self._logged:
            self._logged.add(plugin)
            get_logger().error(
                "run.abandoned",
                job=job,
                plugin=plugin,
                grace_s=CANCEL_GRACE,
                hint=f"plugin {plugin!r} ignores cancellation: its run was left behind and "
                "the job goes on; later abandoned runs of this plugin are counted, not logged",
            )

    async def cancel(self, runs: Mapping[asyncio.Task[Any], tuple[str, str]]) -> None:
        """Cancel ``runs`` (task -> its job and plugin), give them :data:`CANCEL_GRACE`
        to end, and abandon the ones that do not."""
        if not runs:
            return
        for task in runs:
            task.cancel()
        _, left = await asyncio.wait(runs, timeout=CANCEL_GRACE)
        for task in left:  # ignores cancellation: never wait for it
            job, plugin = runs[task]
            self.add(task, job=job, plugin=plugin)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: never "exception was never retrieved"


def _too_late(timeout: float) -> Result:
    return Result(Status.TIMEOUT, f"no result within the job's timeout of {timeout:g}s")


async def run_attempts(
    check: Check[Any],
    *,
    job: str,
    plugin: str,
    timeout: float,
    resources: Resources,
    retry: Retry = NO_RETRY,
    deliver: Deliver,
    abandoned: AbandonedRuns,
    task: asyncio.Task[Any] | None = None,
    member: str | None = None,
    location: str | None = None,
) -> None:
    """Run ``check`` within ``timeout`` seconds, retried as ``retry`` says, in the
    caller's task, and hand its record to ``deliver``, once. Never raises for the
    plugin's failures.

    A run past the timeout is cancelled and becomes a ``timeout`` record. An
    exception, ``SystemExit`` and ``KeyboardInterrupt`` included, becomes an
    ``error`` record naming its type, and so does a ``CancelledError`` the
    plugin raised itself. With retries, the record says how many ``attempts``
    it took and, in ``attempt_errors``, what each earlier attempt got; the
    pauses between attempts are inside the timeout. Cancellation of the
    caller's task by someone else (a stop) propagates and delivers nothing,
    even when the plugin swallows it.

    One timer does the work of two: at the deadline it cancels the caller's
    task (as ``asyncio.timeout`` would), and if the run has still not ended
    :data:`CANCEL_GRACE` later, the task is added to ``abandoned`` and
    ``deliver`` gets the run's ``timeout`` record then; whatever the plugin
    does later is dropped. So the caller must not wait for this coroutine to
    learn the outcome: ``deliver`` tells it (see :func:`run_in_task`).
    ``task`` is the caller's task, when it has it at hand.

    In the caller's task, not a task per attempt: a third cheaper per run.
    """
    if task is None:
        task = asyncio.current_task()
        assert task is not None
    # From the task: asyncio.get_running_loop() makes a getpid() system call
    # on every call in Python 3.11.
    loop = task.get_loop()
    started_at = time.time()
    started = time.perf_counter()
    deadline_at = loop.time() + timeout
    ctx = RunContext(
        job=job, plugin=plugin, resources=resources, timeout=timeout, deadline=deadline_at
    )
    deadline = _Deadline(task, deadline_at, job, plugin, timeout, started_at, deliver, abandoned)
    cancelling = task.cancelling()
    earlier: list[str] = []
    attempt = 0
    try:
        while True:
            attempt += 1
            result = await _attempt(check, ctx)
            pause = retry.pause_after(result, attempt, deadline_at - loop.time())
            if pause is None:
                break
            earlier.append(_summary(result))
            await asyncio.sleep(pause)
    except asyncio.CancelledError:
        # Ours (the deadline) unless someone else cancelled the task too: the
        # same test asyncio.timeout makes.
        if not deadline.expired or task.uncancel() > cancelling:
            raise
        result = _too_late(timeout)
    else:
        if deadline.expired:
            # The plugin swallowed the deadline's cancellation and returned anyway.
            task.uncancel()
            result = _too_late(timeout)
        if task.cancelling() > cancelling:
            # And a stop's: a stopped run has no record (it may be abandoned already).
            raise asyncio.CancelledError
    finally:
        deadline.cancel()
    if not deadline.abandoned:  # else its timeout record is out already
        deliver(
            _record(job, plugin, result, started_at, started, attempt, earlier, member, location)
        )


async def run_in_task(
    check: Check[Any],
    *,
    job: str,
    plugin: str,
    timeout: float,
    resources: Resources,
    abandoned: AbandonedRuns,
    retry: Retry = NO_RETRY,
) -> RunRecord:
    """:func:`run_attempts` in a task of its own (``run:JOB``); returns its record
    once it is out, within ``timeout`` + :data:`CANCEL_GRACE` whatever the
    plugin does. For callers that want the record back: ``runner.testing``,
    the benchmarks."""
    loop = asyncio.get_running_loop()
    record: asyncio.Future[RunRecord] = loop.create_future()
    run = run_attempts(
        check,
        job=job,
        plugin=plugin,
        timeout=timeout,
        resources=resources,
        retry=retry,
        deliver=record.set_result,
        abandoned=abandoned,
    )
    task = loop.create_task(run, name=f"run:{job}")
    return await _wait_for_record(record, task, abandoned, job=job, plugin=plugin)


async def _wait_for_record(
    record: asyncio.Future[RunRecord],
    task: asyncio.Task[Any],
    abandoned: AbandonedRuns,
    *,
    job: str,
    plugin: str,
) -> RunRecord:
    """The record a run in ``task`` delivers into ``record`` (at its end or its
    abandonment). If our caller is cancelled, so is the run (given
    :data:`CANCEL_GRACE`, then abandoned); a run that ends without a record (a
    stop, a bug) raises what ended it."""
    try:
        await asyncio.wait((record, task), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        # Shielded from a second cancellation of our caller: the wait is short.
        await asyncio.shield(abandoned.cancel({task: (job, plugin)}))
        raise
    if record.done():
        return record.result()
    task.result()  # the CancelledError or the exception that ended it
    raise RuntimeError(f"the run of {job!r} ended without a record")


class _Deadline:
    """The deadline of a :func:`run_attempts` run, then its abandonment
    :data:`CANCEL_GRACE` later."""

    __slots__ = ("_args", "_bucket", "_deadlines", "_task", "abandoned", "expired")

    def __init__(self, task: asyncio.Task[Any], when: float, *args: Any) -> None:
        self._task = task
        self._args = args
        self.expired = False
        self.abandoned = False
        self._deadlines = _Deadlines.of(task.get_loop())
        self._bucket = self._deadlines.add(self, when)

    def expire(self) -> None:
        self.expired = True
        self._task.cancel()
        self._bucket = self._deadlines.add(self, self._task.get_loop().time() + CANCEL_GRACE)

    def _abandon(self) -> None:
        if self._task.done():
            return
        job, plugin, timeout, started_at, deliver, abandoned = self._args
        self.abandoned = True
        abandoned.add(self._task, job=job, plugin=plugin)
        duration_ms = round((time.time() - started_at) * 1000, 3)
        deliver(
            RunRecord.of(
                job, plugin, _too_late(timeout), started_at=started_at, duration_ms=duration_ms
            )
        )

    def due(self) -> None:
        if self.expired:
            self._abandon()
        else:
            self.expire()

    def cancel(self) -> None:
        """The run ended: nothing to cancel or abandon any more."""
        self._bucket.pop(self, None)


class _Deadlines:
    """The deadlines of a loop's runs, in buckets of :attr:`RESOLUTION` seconds
    with one timer each.

    A timer of its own per run, cancelled when the run ends a moment later,
    was a tenth of the scheduler's cost per run: its handle, and its place in
    the loop's heap of timers for the whole timeout (cancelled timers leave
    the heap only when they come up). A deadline is met up to RESOLUTION late.
    """

    RESOLUTION = 0.01

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weakly: this is the value of a WeakKeyDictionary keyed by the loop.
        self._loop = weakref.ref(loop)
        self._buckets: dict[int, dict[_Deadline, None]] = {}

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Deadlines:
        deadlines = _DEADLINES_OF_LOOP.get(loop)
        if deadlines is None:
            deadlines = _DEADLINES_OF_LOOP[loop] = cls(loop)
        return deadlines

    def add(self, deadline: _Deadline, when: float) -> dict[_Deadline, None]:
        """File ``deadline`` under its bucket (returned: where to remove it from)."""
        key = math.ceil(when / self.RESOLUTION)
        bucket = self._buckets.get(key)
        if bucket is None:
            loop = self._loop()
            assert loop is not None  # a run of it is filing its deadline
            bucket = self._buckets[key] = {}
            loop.call_at(key * self.RESOLUTION, self._due, key)
        bucket[deadline] = None
        return bucket

    def _due(self, key: int) -> None:
        for deadline in list(self._buckets.pop(key, ())):
            deadline.due()


_DEADLINES_OF_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = (
    weakref.WeakKeyDictionary()
)


def _record(
    job: str,
    plugin: str,
    result: Result,
    started_at: float,
    started: float,
    attempts: int,
    earlier: list[str],
    member: str | None = None,
    location: str | None = None,
) -> RunRecord:
    """The run's record: ``started_at`` wall clock, ``started`` perf_counter;
    ``member``: the cluster member making it; ``location``: where that is.

    What :meth:`RunRecord.of` makes, built positionally (in
    :data:`_RECORD_FIELDS`' order): a frozen dataclass's keyword ``__init__``
    is most of a record's cost, and every run makes one."""
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    message = result.message
    return RunRecord(
        job,
        plugin,
        result.status,
        None if message is None else text(message),
        json_safe(result.fields),
        started_at,
        started_at + duration_ms / 1000,
        duration_ms,
        attempts,
        tuple(earlier),
        None,
        member,
        location,
    )


#: The fields of RunRecord in the order :func:`_record` passes them.
_RECORD_FIELDS = (
    "job",
    "plugin",
    "status",
    "message",
    "fields",
    "started_at",
    "finished_at",
    "duration_ms",
    "attempts",
    "attempt_errors",
    "maintenance",
    "member",
    "location",
)
_ALL_RECORD_FIELDS = fields(RunRecord)
if tuple(f.name for f in _ALL_RECORD_FIELDS[: len(_RECORD_FIELDS)]) != _RECORD_FIELDS or any(
    f.default is MISSING and f.default_factory is MISSING
    for f in _ALL_RECORD_FIELDS[len(_RECORD_FIELDS) :]
):
    # Not an assert (gone under -O): a field inserted or moved would shift the
    # values after it into the wrong fields, silently. Fields added after
    # these with a default are fine: a new record gets the default, as
    # RunRecord.of gives it when not told (the hub fills in what it owns).
    raise ImportError(
        "runner.model.RunRecord's fields changed: update _RECORD_FIELDS and _record's "
        "positional RunRecord(...) in runner/execution.py to match"
    )


async def _attempt(check: Check[Any], ctx: RunContext) -> Result:
    """One call of ``check.run``; whatever it does becomes a result, except the
    cancellation of the run's task (its deadline, or a stop)."""
    try:
        result = await check.run(ctx)
    except TimeoutError as exc:
        # A TimeoutError of the plugin's own (a library's shorter timeout):
        # still a target that did not answer in time. The job's timeout
        # cancels the run's task instead.
        return Result(Status.TIMEOUT, _describe(exc), {"error_type": type(exc).__name__})
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the daemon's: the deadline, or shutdown
        return Result.error(
            f"the plugin raised CancelledError itself: {_describe(exc)}",
            error_type="CancelledError",
        )
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        # SystemExit and KeyboardInterrupt too: a plugin must not stop the daemon.
        return Result.error(_describe(exc), error_type=type(exc).__name__)
    if not isinstance(result, Result):
        return Result.error(
            f"plugin returned {type(result).__name__}, not a runner.plugin.Result",
            error_type="TypeError",
        )
    if not isinstance(result.status, Status):
        try:
            result = replace(result, status=Status(result.status))
        except ValueError:
            return Result.error(
                f"plugin returned a result with status {result.status!r}; "
                f"expected one of {', '.join(s.value for s in Status)}",
                error_type="ValueError",
            )
    return result


def _summary(result: Result) -> str:
    return f"{result.status.value}: {result.message}" if result.message else result.status.value


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"the plugin called sys.exit({'' if exc.code is None else exc.code})"
    return describe_error(exc)  # never raises, even when __str__ does

"""runner.execution: the one run of a check (timeout, retries, errors, abandonment).

Each behaviour is checked on the three ways into the run: the schedule's
(``serve``: a ticker starts the run), ``runner run``'s (``run``:
``Scheduler.run_once``) and ``runner.testing.run_check``'s (``testing``:
``run_in_task``). The scheduler's two publish every record to the hub, once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, suppress
from typing import Any

import pytest
from structlog.testing import capture_logs

from runner import execution
from runner.execution import AbandonedRuns, run_in_task
from runner.model import NO_RETRY, Job, JobState, Retry, RunRecord
from runner.plugin import Check, NoOptions, Result, RunContext, Status
from runner.resources import Resources
from runner.results import ResultHub
from runner.scheduler import Scheduler
from runner.schedules import Interval

PATHS = ["serve", "run", "testing"]

#: What a scripted check does on its attempt number n (1, 2, ...).
Behaviour = Callable[[int], Awaitable[Result]]


def scripted(behave: Behaviour, name: str = "scripted") -> type[Check[NoOptions]]:
    """A check class (a plugin of its own, named ``name``) that does ``behave``."""

    class Scripted(Check[NoOptions]):
        def __init__(self, options: NoOptions) -> None:
            super().__init__(options)
            self.attempts = 0

        async def run(self, ctx: RunContext) -> Result:
            self.attempts += 1
            return await behave(self.attempts)

    Scripted.__name__ = Scripted.__qualname__ = name
    return Scripted


class Published:
    """A hub sink: every record the hub got, in order."""

    def __init__(self) -> None:
        self.records: list[RunRecord] = []
        self.changed = asyncio.Event()

    async def start(self, exit_stack: AsyncExitStack) -> None:
        pass

    def submit(self, record: RunRecord, state: JobState) -> None:
        self.records.append(record)
        self.changed.set()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[RunRecord]:
        async with asyncio.timeout(timeout):
            while len(self.records) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.records


def job_of(
    plugin: type[Check[Any]],
    *,
    timeout: float,
    retry: Retry = NO_RETRY,
    interval: float = 3600.0,
    name: str = "job",
) -> Job:
    return Job(
        name=name,
        plugin_name=plugin.__name__,
        plugin=plugin,
        options=NoOptions(),
        schedule=Interval(interval),
        timeout=timeout,
        line=1,
        retry=retry,
    )


class Runs:
    """One way into the run, and what it left: the hub's records, the abandoned runs."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.published = Published()
        self.scheduler = Scheduler(Resources(), ResultHub([self.published]), spread_window=0.001)
        self.abandoned = self.scheduler.abandoned if path != "testing" else AbandonedRuns()

    async def once(
        self, plugin: type[Check[Any]], *, timeout: float, retry: Retry = NO_RETRY
    ) -> RunRecord:
        job = job_of(plugin, timeout=timeout, retry=retry)
        if self.path == "serve":
            self.scheduler.start(job)
            (record,) = await self.published.wait_for(1, timeout=timeout + 10)
            return record
        if self.path == "run":
            record = await self.scheduler.run_once(job)
            assert self.published.records == [record]  # published, once
            return record
        return await run_in_task(
            plugin(NoOptions()),
            job=job.name,
            plugin=job.plugin_name,
            timeout=timeout,
            resources=Resources(),
            retry=retry,
            abandoned=self.abandoned,
        )


@pytest.fixture(params=PATHS)
async def runs(request: pytest.FixtureRequest) -> AsyncIterator[Runs]:
    runs = Runs(request.param)
    try:
        yield runs
    finally:
        await runs.scheduler.stop_all()


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch) -> float:
    """CANCEL_GRACE at 0.1 s: abandonment tests in a fraction of a second."""
    monkeypatch.setattr(execution, "CANCEL_GRACE", 0.1)
    return 0.1


# --- results -----------------------------------------------------------------


async def test_a_passing_run_is_one_ok_record(runs: Runs) -> None:
    async def ok(n: int) -> Result:
        return Result.ok("fine", answer=42)

    record = await runs.once(scripted(ok), timeout=5)
    assert record.status is Status.OK
    assert (record.message, record.fields["answer"], record.attempts) == ("fine", 42, 1)
    assert record.attempt_errors == ()


async def test_a_run_past_its_timeout_is_a_timeout_record(runs: Runs) -> None:
    async def slow(n: int) -> Result:
        await asyncio.sleep(30)
        return Result.ok()

    started = time.monotonic()
    record = await runs.once(scripted(slow), timeout=0.05)
    assert record.status is Status.TIMEOUT
    assert record.message == "no result within the job's timeout of 0.05s"
    assert 50 <= record.duration_ms < 1000, record.duration_ms
    assert time.monotonic() - started < 5
    assert runs.abandoned.count == 0  # it ended when cancelled


async def _raise_value_error(n: int) -> Result:
    raise ValueError("boom")


async def _exit(n: int) -> Result:
    raise SystemExit(3)


async def _interrupt(n: int) -> Result:
    raise KeyboardInterrupt


async def _cancel_itself(n: int) -> Result:
    raise asyncio.CancelledError("mine")


async def _own_timeout(n: int) -> Result:
    raise TimeoutError("read timed out")


async def _not_a_result(n: int) -> Result:
    return "ok"  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("behave", "status", "error_type", "message"),
    [
        pytest.param(_raise_value_error, "error", "ValueError", "boom", id="raises"),
        pytest.param(_exit, "error", "SystemExit", "the plugin called sys.exit(3)", id="exits"),
        pytest.param(_interrupt, "error", "KeyboardInterrupt", "KeyboardInterrupt", id="interrupt"),
        pytest.param(
            _cancel_itself,
            "error",
            "CancelledError",
            "the plugin raised CancelledError itself: mine",
            id="cancels-itself",
        ),
        pytest.param(_own_timeout, "timeout", "TimeoutError", "read timed out", id="own-timeout"),
        pytest.param(
            _not_a_result,
            "error",
            "TypeError",
            "plugin returned str, not a runner.plugin.Result",
            id="not-a-result",
        ),
    ],
)
async def test_what_a_plugin_does_wrong_is_a_record(
    runs: Runs, behave: Behaviour, status: str, error_type: str, message: str
) -> None:
    record = await runs.once(scripted(behave), timeout=5)
    assert (record.status.value, record.fields["error_type"]) == (status, error_type)
    assert record.message == message


# --- retries -------------------------------------------------------------------


async def test_a_failed_attempt_is_retried_after_its_pause_and_the_record_says_so(
    runs: Runs,
) -> None:
    async def fails_twice(n: int) -> Result:
        return Result.fail(f"nope {n}") if n < 3 else Result.ok()

    retry = Retry(retries=3, delay=0.05)
    record = await runs.once(scripted(fails_twice), timeout=5, retry=retry)
    assert record.status is Status.OK
    assert record.attempts == 3
    assert record.attempt_errors == ("fail: nope 1", "fail: nope 2")
    assert record.duration_ms >= 100  # two pauses of 50 ms


async def test_retries_and_their_pauses_stay_inside_the_timeout(runs: Runs) -> None:
    async def always_fails(n: int) -> Result:
        return Result.fail(f"nope {n}")

    retry = Retry(retries=10, delay=0.1)
    record = await runs.once(scripted(always_fails), timeout=0.35, retry=retry)
    # The last attempt decides; a pause that would end past the deadline is not
    # taken, so the run ends on its own before the timeout cancels it.
    assert record.status is Status.FAIL
    assert 2 <= record.attempts <= 4
    assert record.message == f"nope {record.attempts}"
    assert len(record.attempt_errors) == record.attempts - 1
    assert record.duration_ms < 350


async def test_an_attempt_past_the_deadline_makes_the_run_a_timeout(runs: Runs) -> None:
    async def fast_fail_then_hang(n: int) -> Result:
        if n == 1:
            return Result.fail("first")
        await asyncio.sleep(30)
        return Result.ok()

    record = await runs.once(
        scripted(fast_fail_then_hang), timeout=0.2, retry=Retry(retries=3, delay=0.01)
    )
    assert record.status is Status.TIMEOUT
    assert record.attempts == 2
    assert record.attempt_errors == ("fail: first",)


# --- a plugin that ignores cancellation ------------------------------------------


class Deaf:
    """Checks that catch CancelledError and go on until released."""

    def __init__(self) -> None:
        self.released = False
        self.running = 0
        self.late = 0

    def behaviour(self) -> Behaviour:
        async def deaf(n: int) -> Result:
            self.running += 1
            try:
                while not self.released:
                    try:
                        await asyncio.sleep(0.01)
                    except asyncio.CancelledError:
                        continue
            finally:
                self.running -= 1
            self.late += 1
            return Result.ok("too late")

        return deaf

    async def release(self) -> None:
        """Let the runs end, and wait until they have."""
        self.released = True
        async with asyncio.timeout(5):
            while self.running:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)  # their tasks' last steps


@pytest.fixture
async def deaf() -> AsyncIterator[Deaf]:
    deaf = Deaf()
    try:
        yield deaf
    finally:
        await deaf.release()  # else the test's loop would wait for them forever


@pytest.mark.usefixtures("short_grace")
async def test_a_run_that_ignores_cancellation_is_abandoned_and_its_timeout_comes_once(
    runs: Runs, deaf: Deaf
) -> None:
    started = time.monotonic()
    with capture_logs() as logs:
        record = await runs.once(scripted(deaf.behaviour(), name="deaf"), timeout=0.05)
    took = time.monotonic() - started
    assert record.status is Status.TIMEOUT
    assert took < 3, took  # timeout + grace, not whenever the plugin lets go
    assert runs.abandoned.count == 1 and len(runs.abandoned.tasks) == 1
    (logged,) = [e for e in logs if e["event"] == "run.abandoned"]
    assert (logged["job"], logged["plugin"], logged["log_level"]) == ("job", "deaf", "error")
    # When the plugin lets go at last, its late result goes nowhere.
    await deaf.release()
    assert deaf.late == 1
    await asyncio.sleep(0.05)
    if runs.path != "testing":
        assert runs.published.records == [record]


@pytest.mark.usefixtures("short_grace")
async def test_abandoned_runs_are_counted_logged_once_per_plugin_and_the_job_goes_on(
    deaf: Deaf,
) -> None:
    runs = Runs("serve")
    plugin = scripted(deaf.behaviour(), name="deaf")
    with capture_logs() as logs:
        for name in ("a", "b"):
            runs.scheduler.start(job_of(plugin, timeout=0.05, interval=0.3, name=name))
        try:
            records = await runs.published.wait_for(6, timeout=15)
        finally:
            await runs.scheduler.stop_all()
    assert {r.status for r in records} == {Status.TIMEOUT}
    assert {r.job for r in records} == {"a", "b"}
    assert runs.scheduler.abandoned.count >= 6
    assert [e["plugin"] for e in logs if e["event"] == "run.abandoned"] == ["deaf"]
    assert not [e for e in logs if e["event"] == "job.skipped"]  # each next run came
    await deaf.release()


@pytest.mark.usefixtures("short_grace")
async def test_a_plugin_that_swallows_the_cancellation_and_returns_is_still_a_timeout(
    runs: Runs,
) -> None:
    async def swallows(n: int) -> Result:
        with suppress(asyncio.CancelledError):
            await asyncio.sleep(30)
        return Result.ok("finished anyway")

    record = await runs.once(scripted(swallows), timeout=0.05)
    assert record.status is Status.TIMEOUT
    assert runs.abandoned.count == 0


@pytest.mark.usefixtures("short_grace")
async def test_a_cancelled_caller_of_run_in_task_cancels_the_run_and_abandons_it(
    deaf: Deaf,
) -> None:
    runs = Runs("testing")
    waiting = asyncio.create_task(runs.once(scripted(deaf.behaviour(), name="deaf"), timeout=30))
    await asyncio.sleep(0.05)
    waiting.cancel()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert runs.abandoned.count == 1
    await deaf.release()


@pytest.mark.usefixtures("short_grace")
async def test_the_runs_of_run_once_are_the_schedulers_and_stop_with_it(deaf: Deaf) -> None:
    runs = Runs("run")
    fine = Deaf()
    fine.released = True
    stuck = runs.scheduler.run_once(
        job_of(scripted(deaf.behaviour(), name="deaf"), timeout=30, name="stuck")
    )
    done = await runs.scheduler.run_once(
        job_of(scripted(fine.behaviour(), name="fine"), timeout=30, name="done")
    )
    assert done.status is Status.OK
    async with asyncio.timeout(5):
        await runs.scheduler.stop_all()
    assert runs.abandoned.count == 1
    await deaf.release()
    assert stuck.cancelled()  # it ended without a record: none will come
    assert [r.job for r in runs.published.records] == ["done"]

"""Running jobs on one event loop: checks on their interval, services until stopped.

A check is a timer (:class:`_Ticker`): when a run is due, its callback
starts the run as a task of its own (``run:NAME``) and sets the timer for
the next one, so an idle daemon costs nothing between runs and a slow run
never shifts the schedule: if the previous run is still going when the next
one is due, the new one is skipped and logged, never stacked. A service is a
task the scheduler owns (``job:NAME``) that supervises it and restarts it
with a back-off when it fails.

First runs are spread over up to one second (by a hash of the job name, so
the phase is stable across restarts) so a thousand jobs do not all fire in
the same millisecond; on a grid of :data:`SPREAD_STEP`, so the runs of one
step wake the loop once, not once each.

A pinged check (a heartbeat, :mod:`runner.pings`) is told when to run:
:meth:`Scheduler.ping` hands it a ping, runs it at once (one run per ping,
one after the other) and restarts its timer from now, so the timer only
fires when a deadline passes with no ping.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from runner.execution import AbandonedRuns, run_attempts
from runner.log import get_logger
from runner.model import Job, RunRecord
from runner.pings import Ping, PingedCheck
from runner.plugin import Check, Result, Service, ServiceContext, Slots
from runner.resources import Resources
from runner.results import ResultHub

#: First runs are spread over at most this many seconds after a job starts.
SPREAD_WINDOW = 1.0
#: Spread first runs (and so every later run of an interval) land on this grid
#: of the loop's clock: the jobs of a step share the loop's wake-up. At 1,000
#: jobs x 1 s timers fired on 560-660 distinct milliseconds a second before,
#: on 113 now (ten runs a step): 0.77x the CPU per run (bench/README.md,
#: "Issue 23, session 3"). Ten milliseconds keeps a step's runs a burst far
#: shorter than the step.
SPREAD_STEP = 0.01
#: For checks that share slots (Check.slots): the time one run is assumed to
#: hold a slot when their first runs are spread (a page check: about a second).
SLOT_RUN_ESTIMATE = 1.0
#: A calendar (wall-clock) run's timer is set this much after its time, so a
#: loop whose timers count whole milliseconds (uvloop) does not fire it early.
WALL_CLOCK_MARGIN = 0.001
#: Service restart back-off: first delay, and the cap it doubles up to.
RESTART_FIRST_DELAY = 1.0
RESTART_MAX_DELAY = 60.0


def first_run_offset(job: Job, window: float = SPREAD_WINDOW) -> float:
    """A stable offset in [0, min(spread, window)) for the job's first run,
    where ``spread`` is how far its schedule lets first runs spread (one
    interval; 0 for a schedule that runs at its own times)."""
    spread = min(job.schedule.spread() if job.schedule is not None else 0.0, window)
    offset = (zlib.crc32(job.name.encode()) / 2**32) * spread
    if spread >= SPREAD_WINDOW:  # a shorter interval keeps its own fine phase
        offset -= offset % SPREAD_STEP
    return offset


def first_run_window(job: Job, started: Iterable[Job], window: float = SPREAD_WINDOW) -> float:
    """Over how many seconds ``job``'s first run is spread when the jobs
    ``started`` (itself among them) start together (:meth:`Scheduler.first_run_window`;
    ``runner next`` asks it too, so it shows the times the scheduler will use)."""
    slots = _slots_of(job)
    if slots is None:
        return window
    names = (getattr(_slots_of(j), "name", None) for j in started)
    sharing = sum(1 for name in names if name == slots.name)
    return max(window, sharing * SLOT_RUN_ESTIMATE / slots.size)


@dataclass(eq=False)
class JobHandle:
    """A started job, and events to wait on. What is known about the job (its
    results, whether a service is up) is in the hub's state.

    A service runs in a task of its own (``task``); a check has no task of
    its own, only a timer that starts each run (``ticker``).
    """

    job: Job
    task: asyncio.Task[None] | None = None
    ticker: _Ticker | None = None
    #: Services: set once ready() was called. Checks: always set.
    ready: asyncio.Event = field(init=False)
    #: Services: set when the first start attempt is over, ready or failed.
    settled: asyncio.Event = field(init=False)
    started_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        # Checks share one event that is always set: two events of their own
        # were a fifth of the memory of ten thousand jobs.
        self.ready = asyncio.Event() if self.job.is_service else _ALWAYS_SET
        self.settled = asyncio.Event() if self.job.is_service else _ALWAYS_SET


_ALWAYS_SET = asyncio.Event()
_ALWAYS_SET.set()


class Scheduler:
    """Owns every job task; the daemon tells it which jobs to start and stop.

    Every finished run goes to ``hub.publish``, from one place
    (:meth:`_run`); skipped runs and services going up or down are told to
    the hub too. Runs whose plugin ignores cancellation are left behind in
    :attr:`abandoned`.
    """

    def __init__(
        self,
        resources: Resources,
        hub: ResultHub,
        *,
        spread_window: float = SPREAD_WINDOW,
    ) -> None:
        self.resources = resources
        self.hub = hub
        self.spread_window = spread_window
        #: In a cluster: asked before each scheduled run starts; False holds the
        #: run (this member's lease on its checks is not confirmed: the
        #: process was paused, runner.cluster). None outside a cluster.
        self.gate: Callable[[], bool] | None = None
        #: Scheduled runs the gate held.
        self.held = 0
        self.handles: dict[str, JobHandle] = {}
        #: Services that failed (raised or returned), since start.
        self.service_failures = 0
        #: Runs left behind because their plugin ignored cancellation.
        self.abandoned = AbandonedRuns()
        #: Runs of :meth:`run_once` still going: their job and plugin.
        self._once: dict[asyncio.Task[None], tuple[str, str]] = {}
        #: The limited resources of ``Check.slots``, by name.
        self._slots: dict[str, asyncio.Semaphore] = {}
        #: Jobs whose current run is waiting in line for a slot.
        self._waiting: set[str] = set()
        self._log = get_logger()

    # ------------------------------------------------------------------ control

    def start(self, job: Job, *, not_before: float | None = None) -> JobHandle:
        """Start ``job`` in its own task; it must not be running already.

        ``not_before`` (wall clock): a calendar schedule's first run is its
        first due time after it (a cluster member taking a job over runs no
        slot the previous owner ran)."""
        if job.name in self.handles:
            raise ValueError(f"job {job.name!r} is already running")
        handle = JobHandle(job)
        self.hub.track(
            job.name,
            job.plugin_name,
            job.kind,
            thresholds=job.thresholds,
        )
        # The schedule is anchored here, not when the first run is armed, so
        # that starting many jobs at once does not shift their phases.
        anchor = asyncio.get_running_loop().time()
        if job.is_service:
            handle.task = asyncio.create_task(
                self._supervise_service(handle), name=f"job:{job.name}"
            )
            handle.task.add_done_callback(self._on_job_task_done)
        else:
            handle.ticker = _Ticker(self, job, anchor, not_before)
        self.handles[job.name] = handle
        return handle

    def start_all(self, jobs: Iterable[Job]) -> None:
        for job in jobs:
            self.start(job)

    async def wait_settled(self, timeout: float) -> list[JobHandle]:
        """Wait until every service is ready or has failed its first start.

        Returns the services that are not ready when the wait ends.
        """
        pending = [h.settled.wait() for h in self.handles.values() if not h.settled.is_set()]
        if pending:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*pending)
            except TimeoutError:
                pass
        return [h for h in self.handles.values() if not h.ready.is_set()]

    async def stop(self, names: Iterable[str], grace: float = 5.0) -> None:
        """Stop the named jobs: no more runs; the runs in flight are cancelled and
        get :data:`~runner.execution.CANCEL_GRACE` to end (then they are
        abandoned); services are cancelled and waited for up to ``grace`` seconds."""
        handles = [self.handles.pop(n) for n in list(names) if n in self.handles]
        services = [h.task for h in handles if h.task is not None]
        runs: dict[asyncio.Task[Any], tuple[str, str]] = {}
        for handle in handles:
            if handle.ticker is not None:
                handle.ticker.stop()
                run = handle.ticker.current  # None once a run is abandoned
                if run is not None and not run.done():
                    runs[run] = (handle.job.name, handle.job.plugin_name)
        for task in services:
            task.cancel()
        await self.abandoned.cancel(runs)
        if not services:
            return
        _, still_running = await asyncio.wait(services, timeout=grace)
        for task in still_running:
            self._log.error(
                "job.stop_timeout",
                job=task.get_name().removeprefix("job:"),
                grace_s=grace,
                hint="the plugin ignores cancellation; it is left behind",
            )

    async def stop_all(self, grace: float = 5.0) -> None:
        """Stop every job, and the runs of :meth:`run_once` still going."""
        once, self._once = self._once, {}
        await asyncio.gather(self.abandoned.cancel(once), self.stop(list(self.handles), grace))

    def _on_job_task_done(self, task: asyncio.Task[None]) -> None:
        # Services' tasks end only by cancellation. Anything else is a bug in the
        # scheduler itself: surface it instead of losing it.
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self._log.critical(
                "job.crashed", job=task.get_name().removeprefix("job:"), exc_info=exc
            )

    # ------------------------------------------------------------------ checks

    def ping(self, name: str, ping: Ping) -> bool:
        """Hand ``ping`` to the running pinged check ``name`` (a heartbeat).

        A success or fail ping runs the job at once and restarts its schedule
        from now; when a run is going, the ping waits for the next run, which
        starts as soon as that one ends. A start ping is only kept. False when
        no pinged check of that name runs.
        """
        handle = self.handles.get(name)
        if handle is None or handle.ticker is None:
            return False
        return handle.ticker.ping(ping)

    def _skip(self, job: Job, *, late: float | None = None) -> None:
        """A run was due while the previous one was still going (or waiting), or
        its calendar time is more than half a period past (``late`` seconds)."""
        self.hub.skipped(job.name)
        slots = _slots_of(job)
        if late is not None:
            reason = f"its time passed {late:.3f}s ago, more than half its period"
        elif slots is not None and job.name in self._waiting:
            reason = f"previous run still waiting for a {slots.name} slot"
        else:
            reason = "previous run still going"
        self._log.warning(
            "job.skipped",
            job=job.name,
            plugin=job.plugin_name,
            reason=reason,
            schedule=job.schedule.describe() if job.schedule is not None else None,
        )

    async def _run(self, runs: _Runs) -> None:
        """One run of a check job, in a task of its own (``run:NAME``): the same for
        the schedule and ``runner run``. Its record goes to the hub from here."""
        job = runs.job
        task = asyncio.current_task(runs.loop)  # not get_running_loop(): a getpid() each
        slot = _NO_SLOT

        def publish(record: RunRecord) -> None:
            # The run's one way out, at its end or at its abandonment: a run
            # left behind keeps neither its slot nor its job from the next run.
            slot.release()
            if runs.current is task:
                # Not kept once done: ten thousand hourly jobs would hold their
                # finished runs' tasks and coroutines for an hour.
                runs.current = None
            record = slot.stamp(record)
            self.hub.publish(record)
            if runs.record is not None and not runs.record.done():
                runs.record.set_result(record)

        try:
            # A calendar slot whose run starts more than half a period late is
            # skipped, as one whose timer fired that late (_Ticker._fire): on a
            # loop with a backlog the task can start much later than its timer
            # (seen: 0.68 s on a 1 s interval at load 11, then the next slot on
            # time, 0.3 s after it).
            if runs.start_by is not None:
                late = time.time() - runs.start_by + runs.half_period
                if late > runs.half_period:
                    self._skip(job, late=late)
                    return
            # A run that needs a slot (Check.slots) waits for one in line, keeping
            # its place; the clock of its timeout starts once it has one.
            if runs.needs_slot:
                slot = await self._take_slot(job)
            instance = runs.check.get()
            if isinstance(instance, Result):  # the plugin could not be created
                publish(_record_of(job, instance, time.time(), 0.0))
            else:
                assert job.timeout is not None
                await run_attempts(
                    instance,
                    job=job.name,
                    plugin=job.plugin_name,
                    timeout=job.timeout,
                    resources=self.resources,
                    retry=job.retry,
                    deliver=publish,
                    abandoned=self.abandoned,
                    task=task,
                    member=self.hub.member,
                    location=self.hub.location,
                )
        finally:  # and when it was cancelled (a stop), with no record
            slot.release()
            if runs.current is task:
                runs.current = None
            if runs.record is not None and not runs.record.done():
                runs.record.cancel()  # run_once's caller: no record will come

    def run_once(self, job: Job) -> asyncio.Future[RunRecord]:
        """Start one run of a check job, the same run as the schedule's (its
        record published to the hub); the future returned gets its record, at
        the run's end or its abandonment (cancelled if the run is stopped).

        The run is the scheduler's: :meth:`stop_all` cancels it if it is still
        going, and cancelling the future does not. A run that needs a slot
        (``Check.slots``) waits for one in line: every run is made (``runner
        run``), each with its full timeout.
        """
        # A future, not a coroutine waiting for the record: runner run starts
        # every check at once, and a waiting coroutine per run (with its task
        # and asyncio.wait's waiter) cost runner run of 10,000 checks 12 % more
        # CPU, all of it in the garbage collector's walks.
        runs = _Runs(job, asyncio.get_running_loop())
        record = runs.record = runs.loop.create_future()
        task = runs.current = runs.loop.create_task(self._run(runs), name=f"run:{job.name}")
        self._once[task] = (job.name, job.plugin_name)
        task.add_done_callback(self._once_done)
        return record

    def _once_done(self, task: asyncio.Task[None]) -> None:
        self._once.pop(task, None)

    def first_run_window(self, job: Job) -> float:
        """Over how many seconds the job's first run is spread.

        One second for most jobs. Jobs that share slots are spread over the
        time their slots need for one run of each (at :data:`SLOT_RUN_ESTIMATE`
        a run), up to their interval: a hundred page checks with two pages
        start over 50 s instead of queueing at once, and one page check still
        gives its first result within a second. (Every job of a batch is in
        ``handles`` before the first of their tasks asks.)
        """
        return first_run_window(job, (h.job for h in self.handles.values()), self.spread_window)

    async def _take_slot(self, job: Job) -> _Slot:
        """Wait in line for a slot of the job's limited resource, if it needs one.

        The line is first come, first served, and every run holding a slot
        ends within its timeout (or is abandoned, releasing it), so the wait
        is bounded by the runs ahead. Meanwhile the job's next runs are
        skipped as "still waiting for a slot": an oversubscribed resource
        shows as skips, never as timeouts of the targets.
        """
        slots = _slots_of(job)
        if slots is None:
            return _NO_SLOT
        semaphore = self._slots.get(slots.name)
        if semaphore is None:
            semaphore = self._slots[slots.name] = asyncio.Semaphore(slots.size)
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._waiting.add(job.name)
        try:
            await semaphore.acquire()
        finally:
            self._waiting.discard(job.name)
        return _Slot(semaphore, loop.time() - started)

    # ------------------------------------------------------------------ services

    async def _supervise_service(self, handle: JobHandle) -> None:
        job = handle.job
        delay = RESTART_FIRST_DELAY
        log = self._log.bind(job=job.name, plugin=job.plugin_name)
        while True:
            started = time.monotonic()

            def on_ready(fields: dict[str, Any]) -> None:
                handle.ready.set()
                handle.settled.set()
                self.hub.service_ready(job.name)
                log.info("service.started", **fields)

            ctx = ServiceContext(
                job=job.name, plugin=job.plugin_name, resources=self.resources, on_ready=on_ready
            )
            try:
                service = job.plugin(job.options)
                assert isinstance(service, Service)
                await service.serve(ctx)
                problem = "serve() returned; a service should run until it is cancelled"
                error_type = None
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    log.info("service.stopped")
                    raise
                # The service's own CancelledError (not a stop): a failure, restarted.
                problem, error_type = f"raised CancelledError itself: {exc}", "CancelledError"
            except (Exception, SystemExit, KeyboardInterrupt) as exc:
                # SystemExit too: sys.exit() in a plugin must not stop the daemon.
                problem, error_type = str(exc) or type(exc).__name__, type(exc).__name__
            handle.ready.clear()
            handle.settled.set()
            self.hub.service_failed(job.name, problem)
            self.service_failures += 1
            if time.monotonic() - started > RESTART_MAX_DELAY:
                delay = RESTART_FIRST_DELAY  # it ran fine for a while: start the back-off over
            log.error("service.failed", error=problem, error_type=error_type, retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_DELAY)


class _Runs:
    """What a check job's runs share (:meth:`Scheduler._run`): its plugin
    instance, made on first use; whether it needs a slot; the run in flight."""

    def __init__(self, job: Job, loop: asyncio.AbstractEventLoop) -> None:
        self.job = job
        self.check = _Lazy(job)
        self.needs_slot = _slots_of(job) is not None
        self.loop = loop
        #: The run in flight, if any (not once it is abandoned).
        self.current: asyncio.Task[None] | None = None
        #: Where the record of a run goes besides the hub (``run_once``).
        self.record: asyncio.Future[RunRecord] | None = None
        #: A calendar slot's run that has not started by this wall-clock time
        #: (its due time plus half its period) is skipped; None: never.
        self.start_by: float | None = None
        self.half_period = 0.0


class _Ticker(_Runs):
    """Starts a check's runs on its schedule: one timer per run, no task of its own.

    A timer callback rather than a loop in the job's task sleeping between
    runs: that cost a future and a wake-up of the job's task per run, a
    tenth of the scheduler's whole cost per run.
    """

    def __init__(
        self, scheduler: Scheduler, job: Job, anchor: float, not_before: float | None = None
    ) -> None:
        assert job.schedule is not None, "a check has a schedule"
        super().__init__(job, asyncio.get_running_loop())
        self._scheduler = scheduler
        self.schedule = job.schedule
        self._wall_clock = job.schedule.wall_clock
        self._task_name = f"run:{job.name}"
        #: The next due time on the schedule's clock (the loop's, or the wall
        #: clock for a calendar schedule) and on the loop's.
        self._due = self._anchor = anchor
        self._next_due = anchor
        self._not_before = not_before
        #: The due time (on the schedule's clock) of the last run started; None before one.
        self.last_due: float | None = None
        # One bound method and one context for all of the job's timers, not a
        # new bound method and a copy_context() per timer (per run).
        self._fire_callback = self._fire
        self._context = contextvars.copy_context()
        #: A pinged check's run that another follows while pings wait.
        self._watched: asyncio.Task[None] | None = None
        self._stopped = False
        if issubclass(job.plugin, PingedCheck):
            # Made now, not at the first run: it takes pings from the start, and
            # its first deadline's "no ping since" is this start.
            self.check.get()
        # Armed on the loop's next turn: the first run's spread depends on the
        # jobs sharing its slots, and every job of a batch (start_all) is
        # known by then.
        self._timer: asyncio.Handle = self.loop.call_soon(self._arm)

    def _arm(self) -> None:
        schedule, loop = self.schedule, self.loop
        spread = first_run_offset(self.job, self._scheduler.first_run_window(self.job))
        if schedule.wall_clock:
            start = time.time() - loop.time() + self._anchor
        else:  # on the grid: the offsets are steps, and so the due times
            start = self._anchor - self._anchor % SPREAD_STEP
        if self._not_before is not None and schedule.wall_clock:
            start = max(start, self._not_before)
        self._due = schedule.first_after(start) + spread
        self._next_due = self._on_loop_clock(self._due)
        self._timer = loop.call_at(self._next_due, self._fire_callback, context=self._context)

    def _on_loop_clock(self, due: float) -> float:
        if not self.schedule.wall_clock:
            return due
        # A calendar time: as far ahead on the loop's clock as on the wall's,
        # and a millisecond more. uvloop's clock and timers count whole
        # milliseconds: a timer set to the exact time fired up to 1 ms early,
        # and its re-arm for the rest (_fire) was a 0 ms timer, again and again
        # until the wall clock got there: 7 to 11 early fires a run, 1.28x the
        # CPU of a run on the loop's clock (bench/README.md, issue 21).
        return self.loop.time() + (due - time.time()) + WALL_CLOCK_MARGIN

    def stop(self) -> None:
        self._timer.cancel()
        self._stopped = True

    def ping(self, ping: Ping) -> bool:
        """See :meth:`Scheduler.ping`."""
        instance = self.check.get()
        if not isinstance(instance, PingedCheck):
            if isinstance(instance, Result):  # the plugin could not be created: say so
                self._run_pinged()
                return True
            return False
        if not instance.receive(ping) or self._stopped:
            return True
        loop, schedule = self.loop, self.schedule
        # The schedule restarts from now: the next deadline is one whole
        # period (plus grace) after this ping.
        self._timer.cancel()
        self._due = schedule.next_after(time.time() if self._wall_clock else loop.time())
        self._next_due = self._on_loop_clock(self._due)
        self._timer = loop.call_at(self._next_due, self._fire_callback, context=self._context)
        self._run_pinged()
        return True

    def _run_pinged(self) -> None:
        """Start a run for a waiting ping now, or after the run going; each
        run of a pinged check takes one ping, and is followed by another
        while pings wait."""
        current = self.current
        if current is None or current.done():
            current = self.current = self.loop.create_task(
                self._scheduler._run(self), name=self._task_name
            )
        if self._watched is not current:
            self._watched = current
            current.add_done_callback(self._after_run, context=self._context)

    def _after_run(self, task: asyncio.Task[None]) -> None:
        if self._watched is task:
            self._watched = None
        instance = self.check.get()
        if not self._stopped and isinstance(instance, PingedCheck) and instance.pending:
            self._run_pinged()

    def _fire(self) -> None:
        loop, schedule = self.loop, self.schedule
        late = 0.0
        if self._wall_clock:
            early = self._due - time.time()
            late = -early
            if early > 0:
                # A calendar run never starts before its time. The timer was set
                # from two clocks read one after the other, and a process kept
                # off the core between the two reads fires that much early
                # (seen: a */2 cron run 0.2 ms before its second, under load).
                self._next_due = loop.time() + early + WALL_CLOCK_MARGIN
                self._timer = loop.call_at(
                    self._next_due, self._fire_callback, context=self._context
                )
                return
        due = schedule.next_after(self._due)
        try:
            current = self.current
            gate = self._scheduler.gate
            if gate is not None and not gate():
                self._scheduler.held += 1
            elif current is not None and not current.done():
                self._scheduler._skip(self.job)
            elif late > (due - self._due) / 2:
                # A calendar slot whose timer fired more than half a period late
                # (the loop held up, the machine overloaded) is skipped: run now,
                # it would start less than half a period before the next one
                # (in a cluster, "no two runs within half an interval").
                self._scheduler._skip(self.job, late=late)
            else:
                self.last_due = self._due
                if self._wall_clock:
                    self.half_period = (due - self._due) / 2
                    self.start_by = self._due + self.half_period
                self.current = loop.create_task(self._scheduler._run(self), name=self._task_name)
        except Exception as exc:  # a bug here must not stop the job's schedule
            self._scheduler._log.critical("job.crashed", job=self.job.name, exc_info=exc)
        next_due = self._on_loop_clock(due) if self._wall_clock else due
        if next_due <= loop.time():
            # The loop was blocked or the machine suspended: drop the missed
            # runs instead of firing them all at once.
            now = time.time() if schedule.wall_clock else loop.time()
            due = schedule.catch_up(due, now)
            next_due = self._on_loop_clock(due)
        self._due, self._next_due = due, next_due
        self._timer = loop.call_at(next_due, self._fire_callback, context=self._context)


def _record_of(job: Job, result: Result, started_at: float, duration: float) -> RunRecord:
    return RunRecord.of(
        job.name,
        job.plugin_name,
        result,
        started_at=started_at,
        duration_ms=round(duration * 1000, 3),
    )


def _slots_of(job: Job) -> Slots | None:
    slots = getattr(job.plugin, "slots", None)
    return slots if isinstance(slots, Slots) else None


class _Slot:
    """A slot taken for one run: released after it, and its wait put in the record."""

    def __init__(self, semaphore: asyncio.Semaphore | None, waited: float) -> None:
        self._semaphore = semaphore
        self._needed = semaphore is not None
        self.waited = waited

    def release(self) -> None:
        if self._semaphore is not None:
            self._semaphore.release()
            self._semaphore = None

    def stamp(self, record: RunRecord) -> RunRecord:
        """The record with ``queued_ms`` (0 when a slot was free), for runs that need one."""
        if not self._needed:
            return record
        return replace(record, fields={**record.fields, "queued_ms": round(self.waited * 1000, 3)})


_NO_SLOT = _Slot(None, 0.0)


class _Lazy:
    """Creates a job's plugin instance on first use; a constructor that raises
    becomes an ``error`` result on every run rather than a dead job."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._instance: Check[Any] | None = None

    def get(self) -> Check[Any] | Result:
        if self._instance is None:
            try:
                instance = self.job.plugin(self.job.options)
                assert isinstance(instance, Check)
            except (Exception, SystemExit, KeyboardInterrupt) as exc:
                return Result.error(
                    f"creating the plugin failed: {exc!s}", error_type=type(exc).__name__
                )
            self._instance = instance
        return self._instance

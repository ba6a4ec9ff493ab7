"""Schedules: the one question (next run after t), and the ticker that asks it.

A calendar schedule's due times are wall-clock times: a test-only schedule
due at every tenth of a second of the wall clock stands in for cron here,
and proves the ticker needs no change for one.
"""

from __future__ import annotations

import bisect
import math
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from runner.builtins.sleep import Sleep, SleepOptions
from runner.model import Job
from runner.resources import Resources
from runner.results import ResultHub
from runner.schedules import Interval, Schedule
from test_scheduler import Collect


def test_an_interval_runs_a_new_job_at_once_then_every_interval() -> None:
    every = Interval(30.0)
    assert every.first_after(100.0) == 100.0
    assert every.next_after(100.0) == 130.0
    assert every.spread() == 30.0
    # Woken at 175 after 130 was due: 130 and 160 are dropped, the phase kept.
    assert every.catch_up(130.0, 175.0) == 190.0
    assert every.catch_up(130.0, 130.5) == 160.0
    assert every.describe() == "every 30s"
    assert every == Interval(30.0) and every != Interval(60.0)  # a reload compares them


@dataclass(frozen=True)
class TenthsOfTheWallClock(Schedule):
    """Due at each tenth of a second of the wall clock, as cron is at its minutes."""

    wall_clock = True
    #: Every due time the ticker was given, to hold the runs against.
    given: list[float] = field(default_factory=list, compare=False)

    def next_after(self, t: float) -> float:
        due = (math.floor(t * 10) + 1) / 10
        self.given.append(due)
        return due

    def describe(self) -> str:
        return "every tenth of a wall-clock second"


async def test_a_wall_clock_schedule_runs_at_its_own_times_never_early() -> None:
    from runner.scheduler import Scheduler

    sink = Collect()
    scheduler = Scheduler(Resources(), ResultHub([sink]))
    schedule = TenthsOfTheWallClock()
    job = Job("tenths", "sleep", Sleep, SleepOptions(seconds=0), schedule, 5, 1)
    started = time.time()
    scheduler.start(job)
    try:
        await sink.wait_for(4, timeout=10)
    finally:
        await scheduler.stop_all()
    starts = [record.started_at for _, record in sink.results]
    # The first run waits for the schedule's first time: no run at start.
    assert starts[0] >= schedule.given[0] - 0.002 > started, (started, starts, schedule.given)
    # Each run belongs to the latest due time at or before it (2 ms of slack
    # for turning wall-clock times into the loop's); a run that came early
    # would share its due time with the run before it.
    dues = sorted(set(schedule.given))
    owners = [dues[bisect.bisect_right(dues, at + 0.002) - 1] for at in starts]
    assert owners == sorted(set(owners)), (starts, dues)


async def test_a_wall_clock_run_never_starts_before_its_time_on_a_slow_wall_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ticker turns a calendar time into the loop's clock when it sets the
    timer; if the wall clock then advances slower than the loop's (being
    slewed, or the process kept off the core between the two clock reads),
    the timer comes early. Simulated: the scheduler's wall clock runs at 0.9x,
    so a timer set 0.1 s ahead fires 10 ms early on it. Every run must still
    start at or after its due time on that clock, one run per due time."""
    import runner.scheduler
    from runner.scheduler import Scheduler

    real, origin = time.time, time.time()

    def slow() -> float:
        return origin + 0.9 * (real() - origin)

    monkeypatch.setattr(
        runner.scheduler, "time", SimpleNamespace(time=slow, monotonic=time.monotonic)
    )
    sink = Collect()
    scheduler = Scheduler(Resources(), ResultHub([sink]))
    schedule = TenthsOfTheWallClock()
    job = Job("tenths", "sleep", Sleep, SleepOptions(seconds=0), schedule, 5, 1)
    scheduler.start(job)
    try:
        await sink.wait_for(6, timeout=10)
    finally:
        await scheduler.stop_all()
    # Each run's start on the scheduler's (slow) clock; runs record the real one.
    starts = [origin + 0.9 * (record.started_at - origin) for _, record in sink.results]
    dues = sorted(set(schedule.given))
    owners = [dues[bisect.bisect_right(dues, at) - 1] for at in starts]
    assert all(at >= dues[0] for at in starts), (starts, dues)
    assert owners == sorted(set(owners)), (starts, dues)  # an early run shares its owner

"""When a heartbeat is late: the deadlines of a job that is told, not asked.

A heartbeat expects a ping every ``period`` (:class:`Deadline`) or at each
time of a calendar schedule such as a cron line (:class:`CronDeadline`), and
forgives ``grace`` seconds of lateness. Its "runs" are its deadlines: the
scheduler asks :meth:`~runner.schedules.base.Schedule.next_after` with the
time of the last ping (a ping restarts the schedule from now) or of the last
deadline, so with no ping the job is due once per period, each time a miss.

A new job's first deadline is a whole period plus grace after its start
(:meth:`first_after`), never at once: pings sent while the daemon was down
are lost, and a restart must not make every heartbeat fail.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.durations import format_duration
from runner.schedules.base import Schedule

__all__ = ["CronDeadline", "Deadline"]


@dataclass(frozen=True, slots=True)
class Deadline(Schedule):
    """A ping expected every ``period`` seconds: late ``period + grace`` after
    the last ping (or the job's start), on the loop's monotonic clock."""

    period: float
    grace: float

    def next_after(self, t: float) -> float:
        return t + self.period + self.grace

    def first_after(self, t: float) -> float:
        return self.next_after(t)

    def describe(self) -> str:
        return f"ping every {format_duration(self.period)}, grace {format_duration(self.grace)}"


@dataclass(frozen=True, slots=True)
class CronDeadline(Schedule):
    """A ping expected at each time of ``slots`` (a wall-clock schedule, a
    cron line): late ``grace`` after the first slot that follows the last
    ping (or the job's start). A ping a little early, before its slot, counts
    for the slot before; as on healthchecks.io."""

    slots: Schedule
    grace: float

    wall_clock = True

    def next_after(self, t: float) -> float:
        return self.slots.next_after(t) + self.grace

    def first_after(self, t: float) -> float:
        return self.next_after(t)

    def describe(self) -> str:
        return f"ping at {self.slots.describe()}, grace {format_duration(self.grace)}"

"""When a check runs: a job's schedule is an object with one question.

:meth:`Schedule.next_after` answers "when is the next run after ``t``?". The
scheduler's ticker asks it after every run and never asks which kind of
schedule it holds. A fixed interval (:class:`~runner.schedules.interval.Interval`)
is one implementation; a calendar schedule (cron) is another, with
``wall_clock = True``: its times are wall-clock seconds (``time.time()``),
which the ticker turns into the loop's clock, while an interval's times are
on the loop's monotonic clock, so a wall-clock step never moves them.

:class:`~runner.schedules.cron.Cron` is a cron line in a time zone;
:class:`~runner.schedules.jittered.Jittered` delays another schedule's due
times by a job's stable offset (``jitter:``).

A new kind of schedule is a module in this package with a subclass of
:class:`Schedule`; the config builds it (``runner.config``).
"""

from runner.schedules.aligned import AlignedInterval
from runner.schedules.base import Schedule
from runner.schedules.cron import Cron
from runner.schedules.deadline import CronDeadline, Deadline
from runner.schedules.interval import Interval
from runner.schedules.jittered import Jittered, jitter_offset

__all__ = [
    "AlignedInterval",
    "Cron",
    "CronDeadline",
    "Deadline",
    "Interval",
    "Jittered",
    "Schedule",
    "jitter_offset",
]

"""When a check runs: a job's schedule is an object with one question.

:meth:`Schedule.next_after` answers "when is the next run after ``t``?". The
scheduler's ticker asks it after every run and never asks which kind of
schedule it holds. A fixed interval (:class:`~runner.schedules.interval.Interval`)
is one implementation; a calendar schedule (cron) is another, with
``wall_clock = True``: its times are wall-clock seconds (``time.time()``),
which the ticker turns into the loop's clock, while an interval's times are
on the loop's monotonic clock, so a wall-clock step never moves them.

A new kind of schedule is a module in this package with a subclass of
:class:`Schedule`; the config builds it (``runner.config``).
"""

from runner.schedules.base import Schedule
from runner.schedules.deadline import CronDeadline, Deadline
from runner.schedules.interval import Interval

__all__ = ["CronDeadline", "Deadline", "Interval", "Schedule"]

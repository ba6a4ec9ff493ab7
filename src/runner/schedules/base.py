"""The one question every schedule answers (:class:`Schedule`)."""

from __future__ import annotations

from abc import ABC, abstractmethod

__all__ = ["Schedule"]


class Schedule(ABC):
    """When a check's runs are due. Immutable and comparable (a reload keeps a
    job untouched when its schedule is equal)."""

    #: True when due times are wall-clock (calendar) times; False when they
    #: are the event loop's monotonic clock. A class attribute for most
    #: kinds; a wrapper (:class:`~runner.schedules.jittered.Jittered`) takes
    #: its inner schedule's, so it is not declared a ``ClassVar``.
    wall_clock: bool = False

    @abstractmethod
    def next_after(self, t: float) -> float:
        """The first due time strictly after ``t`` (on this schedule's clock)."""

    def first_after(self, t: float) -> float:
        """The first due time of a job started at ``t``. By default the next
        due time; a fixed interval runs a new job at once."""
        return self.next_after(t)

    def catch_up(self, missed: float, now: float) -> float:
        """The next due time when the loop woke at ``now``, after the due time
        ``missed`` had already passed (a blocked loop, a suspended machine):
        the runs in between are dropped, not fired at once. By default the
        next due time after ``now``."""
        return self.next_after(now)

    def spread(self) -> float:
        """At most how far the first runs of jobs started together may be
        spread after :meth:`first_after` (seconds); 0 when runs are due at
        the schedule's own times."""
        return 0.0

    def time_zone(self) -> str | None:
        """The IANA time zone a calendar schedule's times are in (``runner
        next`` shows them in it); None for a schedule on the loop's clock."""
        return None

    @abstractmethod
    def describe(self) -> str:
        """In words, for logs and the CLI (``every 30s``)."""

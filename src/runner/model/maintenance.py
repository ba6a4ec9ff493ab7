"""Maintenance windows: times when a job's failures are expected (:class:`Maintenance`).

A :class:`Window` is either recurring (a cron expression, a duration and a
time zone: ``cron: "0 3 * * SUN"``, ``duration: 2h``) or once (``start`` and
``end``), and covers the jobs its patterns name (shell-style, :mod:`fnmatch`).
During a window a job's runs go on and are stored, marked with the window's
name; the hub holds its down and recovered alerts, and uptime leaves those
runs out.

:class:`Maintenance` answers "which window covers this job at this time" on
every result, so it is built to be cheap there: which windows apply to which
job is worked out once (when the config is loaded), and each recurring
window keeps the cron period it was last asked about (from one slot to the
next), so cronsim runs about once a period per window, not once a result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from fnmatch import fnmatchcase
from typing import Any

from runner.model.record import format_time
from runner.schedules.cron import zone_named

__all__ = ["ALL_JOBS", "Maintenance", "Occurrence", "Window"]

#: The patterns of a window that names no jobs: every job.
ALL_JOBS = ("*",)

_INF = math.inf


@dataclass(frozen=True, slots=True)
class Window:
    """One maintenance window of the config.

    Either ``cron`` and ``duration`` (seconds; recurring, each slot of the
    expression in ``timezone`` starts one) or ``start`` and ``end`` (seconds
    since the epoch; once). ``jobs`` are job names or shell-style patterns.
    """

    name: str
    jobs: tuple[str, ...] = ALL_JOBS
    cron: str | None = None
    duration: float = 0.0
    timezone: str = "UTC"
    start: float | None = None
    end: float | None = None
    #: The line of the config the window is on (0 when not from a file).
    line: int = 0

    def __post_init__(self) -> None:
        if self.cron is None and (self.start is None or self.end is None):
            raise ValueError(f"window {self.name!r}: give cron and duration, or start and end")
        if self.cron is not None and self.duration <= 0:
            raise ValueError(f"window {self.name!r}: a cron window needs a duration above 0")

    @property
    def recurring(self) -> bool:
        return self.cron is not None

    def covers(self, job: str) -> bool:
        """Whether the window's patterns name ``job``."""
        return any(fnmatchcase(job, pattern) for pattern in self.jobs)

    def period(self, t: float) -> tuple[float, float, float]:
        """``(start, end, next_start)`` around ``t``: the last occurrence that started
        at or before ``t`` (``-inf`` when none did) and when it ends, and when the next
        one starts (``inf`` when none will). Until ``next_start``, the window is on
        exactly while ``t < end``."""
        if self.cron is None:
            assert self.start is not None and self.end is not None
            if t < self.start:
                return -_INF, -_INF, self.start
            return self.start, self.end, _INF
        zone = self.zone()
        # Whole seconds: cron slots are whole seconds, and cronsim ticks one second
        # before it searches, so from floor(t) + 1 backwards it finds the last slot <= t.
        whole = math.floor(t)
        last = _slot(self.cron, datetime.fromtimestamp(whole + 1, zone), reverse=True)
        following = _slot(self.cron, datetime.fromtimestamp(whole, zone), reverse=False)
        start = last if last is not None else -_INF
        return start, start + self.duration, following if following is not None else _INF

    def zone(self) -> tzinfo:
        return zone_named(self.timezone)

    def describe(self) -> str:
        """``cron "0 3 * * SUN" for 2h (Europe/Berlin)``, or ``once``."""
        if self.cron is None:
            return "once"
        return f'cron "{self.cron}" for {_span(self.duration)} ({self.timezone})'


def _slot(expr: str, dt: datetime, *, reverse: bool) -> float | None:
    from cronsim import CronSim

    try:
        return next(CronSim(expr, dt, reverse=reverse)).timestamp()
    except StopIteration:  # none within cronsim's 50 years
        return None


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class Occurrence:
    """A window on from ``start`` to ``end`` (seconds since the epoch)."""

    window: Window
    start: float
    end: float

    def to_json(self) -> dict[str, Any]:
        """What ``/api/maintenance`` says of it (times ISO 8601 UTC)."""
        return {
            "name": self.window.name,
            "start": format_time(self.start),
            "end": format_time(self.end),
            "jobs": list(self.window.jobs),
            "schedule": self.window.describe(),
        }


class Maintenance:
    """The maintenance windows of a config, and which of them cover which job.

    Args:
        windows: the windows, in the config's order (the first that covers a
            job names it when several do).
        jobs: the config's job names: which windows cover each is worked out
            here, once. A job not named here is matched on first use.
    """

    def __init__(self, windows: Sequence[Window] = (), jobs: Iterable[str] = ()) -> None:
        self.windows = tuple(windows)
        self._of_job: dict[str, tuple[int, ...]] = {}
        #: Per window, the period last computed: (start, end, next_start).
        self._periods: list[tuple[float, float, float]] = [(_INF, _INF, -_INF)] * len(self.windows)
        if self.windows:
            for job in jobs:
                self._of_job[job] = self._indices(job)

    def __bool__(self) -> bool:
        return bool(self.windows)

    def __repr__(self) -> str:
        return f"Maintenance({[w.name for w in self.windows]!r})"

    def _indices(self, job: str) -> tuple[int, ...]:
        return tuple(i for i, window in enumerate(self.windows) if window.covers(job))

    def _period(self, i: int, t: float) -> tuple[float, float, float]:
        period = self._periods[i]
        if not period[0] <= t < period[2]:
            period = self._periods[i] = self.windows[i].period(t)
        return period

    def covering(self, job: str) -> tuple[Window, ...]:
        """The windows whose patterns name ``job`` (on or not)."""
        return tuple(self.windows[i] for i in self._of(job))

    def _of(self, job: str) -> tuple[int, ...]:
        indices = self._of_job.get(job)
        if indices is None:
            indices = self._of_job[job] = self._indices(job)
        return indices

    def active(self, job: str, t: float) -> Window | None:
        """The window covering ``job`` at ``t`` (seconds since the epoch), or None.

        Called for every result: a dictionary lookup and two comparisons per
        window that covers the job; cronsim only when ``t`` leaves the cron
        period last asked about.
        """
        if not self.windows:
            return None
        for i in self._of(job):
            start, end, _ = self._period(i, t)
            if start <= t < end:
                return self.windows[i]
        return None

    def current(self, t: float) -> list[Occurrence]:
        """The windows on at ``t``, whichever jobs they cover, in the config's order."""
        out = []
        for i, window in enumerate(self.windows):
            start, end, _ = self._period(i, t)
            if start <= t < end:
                out.append(Occurrence(window, start, end))
        return out

    def next(self, t: float) -> Occurrence | None:
        """The first window to start after ``t``; None when none will."""
        best: Occurrence | None = None
        for i, window in enumerate(self.windows):
            next_start = self._period(i, t)[2]
            if next_start == _INF or (best is not None and next_start >= best.start):
                continue
            end = window.end if window.cron is None else next_start + window.duration
            assert end is not None
            best = Occurrence(window, next_start, end)
        return best

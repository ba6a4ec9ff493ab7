"""A cron line (``cron: "*/5 * * * *"``), evaluated by cronsim in a time zone.

The expression is cronsim's (https://github.com/cuu508/cronsim, the evaluator
healthchecks.io runs): five fields, or six with a leading seconds field
(``*/10 * * * * *``), plus ``L``, ``LW`` and ``#`` forms. Daylight saving
time follows Debian's cron, as cronsim documents it: a line at a fixed
time (a number in both the minute and the hour field) whose time the spring
change skips runs right after the gap, and one whose time the autumn change
repeats runs once; a line that runs more often than hourly (a ``*`` in the
minute or hour field), and every six-field line, runs by the clock's real
seconds, so the repeated hour's slots come twice and the skipped hour's
not at all.

Due times are shared: every :class:`Cron` with the same expression and zone
asks one :class:`_Slots`, which keeps a short window of consecutive due
times and steps cronsim once per slot, however many jobs ask. Ten thousand
jobs due every second cost one cronsim step a second and a bisection each,
not ten thousand walks.
"""

from __future__ import annotations

import functools
import math
import weakref
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING

from runner.schedules.base import Schedule

if TYPE_CHECKING:
    from cronsim import CronSim

# cronsim is imported when a config has a cron line, not by every start
# (about 1 ms; zoneinfo comes with pydantic anyway).

__all__ = ["Cron", "check_expression", "zone_named"]

#: Slots one (expression, zone) keeps behind its newest: jobs whose jitter
#: puts them up to this many slots behind still find theirs by bisection.
_KEEP = 64
#: Steps taken forward from the window's end before starting over at ``t``
#: (a ``runner next --from`` far ahead; a machine resumed after a day).
_MAX_STEPS = 64


def zone_named(name: str) -> tzinfo:
    """The time zone ``name`` (IANA: ``Europe/Berlin``, ``UTC``).

    Raises:
        ValueError: no such zone in the system's (or the tzdata package's) database.
    """
    if name == "UTC":
        return UTC  # cronsim steps UTC by plain arithmetic
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    # OSError: a folder of the database ("Europe"), a name too long for a file.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        shown = repr(name) if len(name) <= 60 else f"of {len(name)} characters"
        raise ValueError(
            f"unknown time zone {shown}; expected an IANA name such as "
            "Europe/Berlin, America/New_York or UTC"
        ) from None


def check_expression(expr: object) -> str:
    """``expr`` with its whitespace normalised, if cronsim accepts it and it is
    ever due.

    Raises:
        ValueError: not a string, what cronsim says is wrong (``Bad minute``),
            or that the line matches no time in the next 50 years
            (``0 0 31 2 *`` is caught by cronsim itself; ``* * */20 * 1L``
            only by trying).
    """
    if not isinstance(expr, str):
        raise ValueError("expected a cron line such as '*/5 * * * *'")
    return _checked(expr)


# Cached: ten thousand jobs on one line are validated once (the spec and
# Cron both ask), not with a cronsim walk each.
@functools.lru_cache(maxsize=1024)
def _checked(expr: str) -> str:
    from cronsim import CronSim, CronSimError

    line = " ".join(expr.split())
    shown = repr(expr) if len(expr) <= 60 else f"of {len(expr)} characters"
    try:
        it = CronSim(line, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ValueError(f"invalid cron line {shown}: {exc}") from None
    except (ValueError, IndexError, TypeError) as exc:  # input cronsim does not expect
        raise ValueError(f"invalid cron line {shown}: {exc}") from None
    try:
        next(it)
    except StopIteration:
        raise ValueError(f"cron line {shown} never matches a date") from None
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"invalid cron line {shown}: {exc}") from None
    return line


class _Slots:
    """The due times of one (expression, zone), for every :class:`Cron` equal to it.

    ``times`` holds every slot in ``(since, times[-1]]``, ascending, as epoch
    seconds. A question about a time inside that window is a bisection; one
    just past it steps the shared cronsim iterator; anything else is answered
    by a cronsim walk of its own (before the window) or starts the window
    over (far past it).
    """

    __slots__ = ("__weakref__", "_it", "expr", "since", "times", "zone")

    def __init__(self, expr: str, zone: tzinfo) -> None:
        self.expr = expr
        self.zone = zone
        self.times: list[float] = []
        self.since = math.inf
        self._it: CronSim | None = None

    def next_after(self, t: float) -> float:
        times = self.times
        if self.since <= t:
            if t < times[-1]:
                return times[bisect_right(times, t)]
            for _ in range(_MAX_STEPS):
                slot = self._step()
                if slot > t:
                    if len(times) > 2 * _KEEP:
                        self.since = times[-_KEEP - 1]
                        del times[: len(times) - _KEEP]
                    return slot
        elif times and t < self.since:
            return _walk(self.expr, self.zone, t)[1]
        self._it, first = _walk(self.expr, self.zone, t)
        self.since = t
        self.times = [first]
        return first

    def _step(self) -> float:
        """The next slot from the shared iterator, appended to the window."""
        assert self._it is not None
        last = self.times[-1]
        slot = _next_slot(self._it, last)
        self.times.append(slot)
        return slot


def _walk(expr: str, zone: tzinfo, t: float) -> tuple[CronSim, float]:
    """A cronsim iterator started at ``t``, and its first slot after ``t``."""
    from cronsim import CronSim

    it = CronSim(expr, datetime.fromtimestamp(t, zone))
    return it, _next_slot(it, t)


def _next_slot(it: CronSim, after: float) -> float:
    """The iterator's next slot strictly after ``after``: cronsim walks a
    fixed-time line in local time, so after a repeated hour it can give a
    time before one it gave already; those are skipped (that run was made)."""
    while True:
        try:
            slot = next(it).timestamp()
        except StopIteration:  # no match in 50 years
            return math.inf
        if slot > after:
            return slot


#: The shared windows, by (expression, zone): weak, so a line no job uses
#: any more (after a reload) frees its window.
_WINDOWS: weakref.WeakValueDictionary[tuple[str, str], _Slots] = weakref.WeakValueDictionary()


def _window(expr: str, zone: str) -> _Slots:
    slots = _WINDOWS.get((expr, zone))
    if slots is None:
        slots = _WINDOWS[(expr, zone)] = _Slots(expr, zone_named(zone))
    return slots


@dataclass(frozen=True, slots=True)
class Cron(Schedule):
    """Due at the times a cron line matches in ``timezone`` (wall-clock seconds).

    Equal (and hashed) by the expression, whitespace normalised, and the zone.

    Raises:
        ValueError: an invalid or never-due expression, or an unknown zone.
    """

    expr: str
    timezone: str = "UTC"
    _slots: _Slots = field(init=False, repr=False, compare=False)

    wall_clock = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "expr", check_expression(self.expr))
        object.__setattr__(self, "_slots", _window(self.expr, self.timezone))

    def next_after(self, t: float) -> float:
        return self._slots.next_after(t)

    def time_zone(self) -> str:
        return self.timezone

    def describe(self) -> str:
        return f"cron {self.expr} ({self.timezone})"

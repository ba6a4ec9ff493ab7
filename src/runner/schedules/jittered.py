"""Jitter that stays put (``jitter: 30s``): each due time of a schedule,
delayed by one offset per job."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from runner.durations import format_duration
from runner.schedules.base import Schedule

__all__ = ["Jittered", "jitter_offset"]


def jitter_offset(name: str, jitter: float) -> float:
    """The offset in [0, ``jitter``) of the job ``name``: from a hash of the
    name (BLAKE2b, not ``hash()``, which changes with every process), so it
    is the same on every restart and every machine."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * jitter


@dataclass(frozen=True, slots=True)
class Jittered(Schedule):
    """The due times of ``inner``, each ``offset`` seconds later.

    For a calendar schedule the first run is the first delayed slot after
    the start, which may belong to a slot just before it (a job started at
    12:00:10 with an offset of 20 s runs at 12:00:20 for the 12:00 slot). An
    interval's slots begin at the start, so its first run is the start plus
    the offset (plus the interval's own first-run spread, which the ticker
    adds as for any interval).
    """

    inner: Schedule
    offset: float
    wall_clock: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "wall_clock", self.inner.wall_clock)

    def next_after(self, t: float) -> float:
        return self.inner.next_after(t - self.offset) + self.offset

    def first_after(self, t: float) -> float:
        if self.inner.wall_clock:
            return self.inner.first_after(t - self.offset) + self.offset
        return self.inner.first_after(t) + self.offset

    def catch_up(self, missed: float, now: float) -> float:
        return self.inner.catch_up(missed - self.offset, now - self.offset) + self.offset

    def spread(self) -> float:
        return self.inner.spread()

    def time_zone(self) -> str | None:
        return self.inner.time_zone()

    def describe(self) -> str:
        return f"{self.inner.describe()}, jitter +{format_duration(round(self.offset, 3))}"

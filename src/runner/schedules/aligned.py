"""A fixed interval on the wall clock, the same slots on every host
(``interval:`` in a cluster).

A plain :class:`~runner.schedules.interval.Interval` counts from the
moment its daemon started the job, so two daemons running one job would
each have their own phase. In a cluster a job moves between members, and
"no slot runs twice" needs a slot to be the same instant on every member:
here the slots are ``phase + k * every`` seconds since the epoch, with the
phase taken from the job's name (stable across restarts and hosts). A
member that takes a job over runs its next slot, never one the previous
owner already ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from runner.durations import format_duration
from runner.schedules.base import Schedule

__all__ = ["AlignedInterval"]


@dataclass(frozen=True, slots=True)
class AlignedInterval(Schedule):
    """Every ``every`` seconds at ``phase + k * every`` (wall clock, epoch
    seconds); ``phase`` is in ``[0, every)``."""

    every: float
    phase: float = 0.0
    wall_clock = True

    def next_after(self, t: float) -> float:
        slot = self.phase + (math.floor((t - self.phase) / self.every) + 1) * self.every
        # Float rounding can land a hair at or before t: a due time is strictly after.
        return slot if slot > t else slot + self.every

    def first_after(self, t: float) -> float:
        # A new owner runs the first slot that has not begun: never one before t.
        return self.next_after(t)

    def describe(self) -> str:
        return f"every {format_duration(self.every)} (on the cluster's clock)"

"""A fixed interval: the schedule of every check today (``interval: 30s``)."""

from __future__ import annotations

from dataclasses import dataclass

from runner.durations import format_duration
from runner.schedules.base import Schedule

__all__ = ["Interval"]


@dataclass(frozen=True, slots=True)
class Interval(Schedule):
    """Every ``every`` seconds, on the loop's monotonic clock; a new job runs
    at once (its first run spread over at most one interval)."""

    every: float

    def next_after(self, t: float) -> float:
        return t + self.every

    def first_after(self, t: float) -> float:
        return t

    def catch_up(self, missed: float, now: float) -> float:
        # Keep the phase: jobs spread over the first second stay spread after
        # a block, instead of all resuming one interval after it.
        return missed + ((now - missed) // self.every + 1) * self.every

    def spread(self) -> float:
        return self.every

    def describe(self) -> str:
        return f"every {format_duration(self.every)}"

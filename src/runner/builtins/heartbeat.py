"""The ``heartbeat`` check: runner is told (``/ping/<job>``) instead of asking.

A cron job, a backup script or a CI pipeline pings the daemon's HTTP
endpoint when it runs (``curl``, or ``runner ping``); the job is ok while
the pings come in time, and fails when a period (or a cron slot) plus grace
passes without one, on a ``/fail`` ping, or on a non-zero exit status.
See docs/heartbeats.md.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, model_validator

from runner.durations import Duration, format_duration
from runner.pings import PingedCheck
from runner.plugin import Options, Result, ResultMetric, RunContext
from runner.schedules import Cron, CronDeadline, Deadline, Schedule


class HeartbeatOptions(Options):
    period: Duration | None = Field(
        None, description="How often a ping is expected (1h, 1d). Give period or cron."
    )
    cron: str | None = Field(
        None,
        description='A cron line of the times a ping is expected ("0 3 * * *"), instead of period.',
    )
    timezone: str | None = Field(
        None, description="The IANA time zone of cron (Europe/Berlin); default UTC."
    )
    grace: Duration = Field(
        300.0, description="How late a ping may come before the job fails (default 5m)."
    )
    ping_key: str | None = Field(
        None,
        min_length=16,
        description="A secret (${HEARTBEAT_KEY}) pinging the job at /ping/<ping_key> from "
        "anywhere, instead of /ping/<job name> on a loopback endpoint only.",
    )

    @model_validator(mode="after")
    def _one_schedule(self) -> HeartbeatOptions:
        if (self.period is None) == (self.cron is None):
            raise ValueError("give period (every 1h: period: 1h) or cron, one of them")
        if self.timezone is not None and self.cron is None:
            raise ValueError("timezone is for cron; a period needs none")
        if self.cron is not None:
            Cron(self.cron, self.timezone or "UTC")  # a bad line or zone: a config error
        return self


class Heartbeat(PingedCheck[HeartbeatOptions]):
    """Fails when no ping comes in time: told by /ping/<job>, not asking."""

    Options = HeartbeatOptions
    result_metrics = (
        ResultMetric(
            "run_ms", "heartbeat_run_ms", "Time from start ping to finish of the last run"
        ),
    )

    def __init__(self, options: HeartbeatOptions) -> None:
        super().__init__(options)
        #: The last finishing ping's time; the job's start until the first one.
        self._since = time.time()
        self._pinged = False

    @classmethod
    def schedule_for(cls, options: HeartbeatOptions) -> Schedule:
        if options.period is not None:
            return Deadline(options.period, options.grace)
        assert options.cron is not None
        return CronDeadline(Cron(options.cron, options.timezone or "UTC"), options.grace)

    @classmethod
    def ping_key(cls, options: HeartbeatOptions) -> str | None:
        return options.ping_key

    async def run(self, ctx: RunContext) -> Result:
        taken = self.take()
        if taken is None:
            return Result.fail(self._late())
        ping, start = taken
        self._since, self._pinged = ping.at, True
        fields: dict[str, Any] = {}
        if start is not None:
            fields["run_ms"] = round((ping.at - start.at) * 1000, 3)
        if ping.exit_status is not None:
            fields["exit_status"] = ping.exit_status
        if ping.body:
            fields["body"] = ping.body.decode("utf-8", "replace")
        if ping.truncated:
            fields["body_truncated"] = True
        if ping.ok:
            return Result.ok(**fields)
        reason = "fail ping" if ping.exit_status is None else f"exit status {ping.exit_status}"
        return Result.fail(reason, **fields)

    def _late(self) -> str:
        """``no ping since 03:00:02 UTC; expected every 1h, grace 5m``."""
        options = self.options
        since = _clock(self._since) + ("" if self._pinged else " (the start)")
        if options.period is not None:
            expected = f"every {format_duration(options.period)}"
        else:
            expected = f"at {options.cron!r} ({options.timezone or 'UTC'})"
        grace = format_duration(options.grace)
        message = f"no ping since {since}; expected {expected}, grace {grace}"
        if self.started is not None:
            message += f"; started at {_clock(self.started.at)}, no finish ping"
        return message


def _clock(epoch: float) -> str:
    """``03:00:02 UTC``, with the date when it is not today's."""
    moment = datetime.fromtimestamp(epoch, UTC)
    if moment.date() == datetime.now(UTC).date():
        return moment.strftime("%H:%M:%S UTC")
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")

"""The ``sleep`` check: waits, then succeeds. For trying out schedules, overlap and timeouts."""

from __future__ import annotations

import asyncio
import time

from pydantic import Field

from runner.durations import MAX_DURATION
from runner.plugin import Check, Options, Result, RunContext


class SleepOptions(Options):
    seconds: float = Field(
        default=1.0,
        ge=0,
        allow_inf_nan=False,
        le=MAX_DURATION,
        description="How long each run sleeps, in seconds, before it returns ok.",
    )


class Sleep(Check[SleepOptions]):
    """Sleeps for a while, then returns ok; for testing schedules, overlap and timeouts."""

    Options = SleepOptions

    async def run(self, ctx: RunContext) -> Result:
        started = time.monotonic()
        await asyncio.sleep(self.options.seconds)
        return Result.ok(slept_s=round(time.monotonic() - started, 3))

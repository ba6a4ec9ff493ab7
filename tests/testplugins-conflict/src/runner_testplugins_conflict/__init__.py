"""A plugin whose entry point name clashes with a built-in."""

from __future__ import annotations

from runner.plugin import Check, NoOptions, Result, RunContext


class OtherSleep(Check[NoOptions]):
    """Claims the name 'sleep' too."""

    async def run(self, ctx: RunContext) -> Result:
        return Result.ok()

"""Misbehaving plugins for runner's tests, installed through a real entry point."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from runner.plugin import (
    Check,
    NoOptions,
    Options,
    Result,
    RunContext,
    Service,
    ServiceContext,
    Slots,
)


class RaisesOptions(Options):
    message: str = "boom"


class Raises(Check[RaisesOptions]):
    """Raises on every run."""

    Options = RaisesOptions

    async def run(self, ctx: RunContext) -> Result:
        raise RuntimeError(self.options.message)


class Hangs(Check[NoOptions]):
    """Never finishes; the daemon's timeout must cancel it."""

    async def run(self, ctx: RunContext) -> Result:
        await asyncio.Event().wait()
        return Result.ok()


class StubbornOptions(Options):
    seconds: float = 1.0


class Stubborn(Check[StubbornOptions]):
    """Blocks the event loop with time.sleep: what a badly written plugin does."""

    Options = StubbornOptions

    async def run(self, ctx: RunContext) -> Result:
        time.sleep(self.options.seconds)  # noqa: ASYNC251 - blocking is the point
        return Result.ok()


class CountOptions(Options):
    path: str


class Count(Check[CountOptions]):
    """Appends one line per run to a file, so a test can count runs from outside."""

    Options = CountOptions

    async def run(self, ctx: RunContext) -> Result:
        with Path(self.options.path).open("a") as f:  # noqa: ASYNC230 - tiny local write
            f.write(f"{time.time()}\n")
        return Result.ok()


class FlakyServiceOptions(Options):
    message: str = "cannot start"


class FlakyService(Service[FlakyServiceOptions]):
    """A service that fails every time it starts."""

    Options = FlakyServiceOptions

    async def serve(self, ctx: ServiceContext) -> None:
        raise OSError(self.options.message)


class BadOptions(Check[NoOptions]):
    """Its options are a dict, not a pydantic model."""

    Options = dict  # type: ignore[assignment]

    async def run(self, ctx: RunContext) -> Result:
        return Result.ok()


class Abstract(Check[NoOptions]):
    """Forgot to implement run()."""


def not_a_plugin() -> None:
    """An entry point that is not a plugin class."""


class Widget:
    """The base class of the test-only entry point group ``runner.tests.widgets``."""

    Options: type[Options] = Options
    kind = "widget"


class Gear(Widget):
    """A widget."""


class OneAtATimeOptions(Options):
    seconds: float = 0.3


class OneAtATime(Check[OneAtATimeOptions]):
    """Needs the one slot of a limited resource, as page checks need a browser page."""

    Options = OneAtATimeOptions
    slots = Slots("tests.one-at-a-time", 1)
    running = 0

    async def run(self, ctx: RunContext) -> Result:
        OneAtATime.running += 1
        try:
            most = OneAtATime.running
            await asyncio.sleep(self.options.seconds)
            return Result.ok(at_once=most)
        finally:
            OneAtATime.running -= 1

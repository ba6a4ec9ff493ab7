"""Third-party plugins that misbehave on purpose, each in one way a real one might."""

from __future__ import annotations

import asyncio
import os
import sys

from runner.plugin import Check, NoOptions, Options, Result, RunContext, Service, ServiceContext


class IgnoresCancel(Check[NoOptions]):
    """Catches CancelledError and goes on, forever."""

    async def run(self, ctx: RunContext) -> Result:
        while True:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue


class IgnoresCancelService(Service[NoOptions]):
    """A service that will not stop when cancelled."""

    async def serve(self, ctx: ServiceContext) -> None:
        ctx.ready()
        while True:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue


class ExitsOptions(Options):
    code: int = 3


class Exits(Check[ExitsOptions]):
    """Calls sys.exit() in the middle of a run."""

    Options = ExitsOptions

    async def run(self, ctx: RunContext) -> Result:
        sys.exit(self.options.code)


class ExitsService(Service[NoOptions]):
    """A service that calls sys.exit() once it is up."""

    async def serve(self, ctx: ServiceContext) -> None:
        ctx.ready()
        await asyncio.sleep(0.1)
        sys.exit(4)


class Interrupts(Check[NoOptions]):
    """Raises KeyboardInterrupt itself."""

    async def run(self, ctx: RunContext) -> Result:
        raise KeyboardInterrupt


class CancelsItself(Check[NoOptions]):
    """Raises CancelledError of its own, as code that misuses asyncio does."""

    async def run(self, ctx: RunContext) -> Result:
        await asyncio.sleep(0)
        raise asyncio.CancelledError("the plugin's own")


class PrintsOptions(Options):
    size: int = 200


class Prints(Check[PrintsOptions]):
    """Prints to stdout without a newline, and writes to file descriptor 1."""

    Options = PrintsOptions

    async def run(self, ctx: RunContext) -> Result:
        print("PLUGIN-PRINT-no-newline", end="")
        print("PLUGIN-PRINT-" + "x" * self.options.size, end="", flush=True)
        os.write(1, b"PLUGIN-FD1-raw")
        return Result.ok("printed")


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque thing>"

    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class OddFields(Check[NoOptions]):
    """A result whose fields JSON cannot encode."""

    async def run(self, ctx: RunContext) -> Result:
        return Result.ok(
            "odd",
            pairs={("a", 1): "tuple key", 2: "int key"},
            thing=_Opaque(),
            peer=("127.0.0.1", 443),
            tags={"x"},
            ratio=float("nan"),
            raw=b"\x00\xff",
        )


class SaysOptions(Options):
    value: str


class Says(Check[SaysOptions]):
    """Fails repeating its option in the ways messages usually do (repr, in a list)."""

    Options = SaysOptions

    async def run(self, ctx: RunContext) -> Result:
        value = self.options.value
        return Result.fail(f"got {value!r}", seen=[value], again=repr(value))

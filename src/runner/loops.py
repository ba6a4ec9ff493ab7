"""Which event loop runs the daemon: asyncio's own, or uvloop (``runner-daemon[fast]``).

uvloop (libuv under asyncio's API) moves socket, timer and subprocess work
into C: the echo listener, the HTTP checks and the scheduler spend less CPU
on it. Everything the daemon uses works on both (signals, subprocesses for
Playwright's driver and the config probe, aiohttp, asyncpg), so ``auto``
picks uvloop whenever it is installed; ``--loop asyncio`` is there to rule
it out when a plugin misbehaves on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["CHOICES", "LoopUnavailable", "loop_factory", "loop_name"]

#: The values of ``--loop``.
CHOICES = ("auto", "asyncio", "uvloop")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class LoopUnavailable(RuntimeError):
    """The loop asked for is not installed."""


def loop_factory(choice: str = "auto") -> LoopFactory:
    """A function creating a new event loop of the kind ``choice`` names:
    ``asyncio``, ``uvloop``, or ``auto`` (uvloop when importable, else asyncio).

    Raises:
        LoopUnavailable: ``uvloop`` was asked for and cannot be imported.
    """
    if choice not in CHOICES:
        raise ValueError(f"unknown event loop {choice!r}; choose one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError as exc:
        if choice == "auto":
            return asyncio.new_event_loop
        raise LoopUnavailable(
            f"--loop uvloop: uvloop cannot be imported ({exc}); install it with "
            "`pip install 'runner-daemon[fast]'`, or use --loop asyncio"
        ) from None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: what runs ``loop`` (as ``daemon.starting`` logs it)."""
    return "uvloop" if type(loop).__module__.partition(".")[0] == "uvloop" else "asyncio"

"""Shared resources: created once, closed once, never half-made."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from runner.resources import Resources


class Factory:
    """Makes numbered resources and records opening and closing."""

    def __init__(
        self,
        delay: float = 0.0,
        fail: int = 0,
        name: str = "",
        close_delay: float = 0.0,
        close_error: bool = False,
    ) -> None:
        self.name = name
        self.delay = delay
        #: How long closing takes (stopping a Playwright driver, say), and
        #: whether it then fails.
        self.close_delay = close_delay
        self.close_error = close_error
        self.fail = fail  # how many first attempts raise
        self.events: list[str] = []
        self.made = 0
        self.closing = asyncio.Event()  # set as a close starts

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[dict[str, object]]:
        self.made += 1
        number = self.made
        await asyncio.sleep(self.delay)
        if number <= self.fail:
            raise ConnectionError(f"attempt {number} failed")
        self.events.append(f"open {self.name}{number}")
        resource: dict[str, object] = {"number": number, "alive": True}
        try:
            yield resource
        finally:
            resource["alive"] = False
            self.closing.set()
            if self.close_delay:
                await asyncio.sleep(self.close_delay)
            self.events.append(f"close {self.name}{number}")
            if self.close_error:
                raise ConnectionError(f"closing {number} failed")


async def test_concurrent_first_uses_create_one() -> None:
    resources, factory = Resources(), Factory(delay=0.05)
    got = await asyncio.gather(*(resources.get("k", factory) for _ in range(10)))
    assert {id(r) for r in got} == {id(got[0])}
    assert factory.made == 1
    await resources.aclose()
    assert factory.events == ["open 1", "close 1"]


async def test_a_failed_creation_is_not_cached() -> None:
    resources, factory = Resources(), Factory(fail=1)
    with pytest.raises(ConnectionError, match="attempt 1 failed"):
        await resources.get("k", factory)
    assert (await resources.get("k", factory))["number"] == 2
    await resources.aclose()


async def test_an_unusable_resource_is_closed_and_made_again() -> None:
    resources, factory = Resources(), Factory()
    first = await resources.get("k", factory)
    first["alive"] = False  # it crashed
    second = await resources.get("k", factory, usable=lambda r: bool(r["alive"]))
    assert second["number"] == 2
    assert factory.events == ["open 1", "close 1", "open 2"]
    await resources.aclose()


async def test_a_caller_cancelled_mid_creation_leaves_it_to_finish() -> None:
    resources, factory = Resources(), Factory(delay=0.2)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await resources.get("k", factory)
    # The next caller gets the same creation, not a second launch.
    resource = await resources.get("k", factory)
    assert resource["number"] == 1
    assert factory.made == 1
    await resources.aclose()
    assert factory.events == ["open 1", "close 1"]


def _alive(resource: dict[str, object]) -> bool:
    return bool(resource["alive"])


async def _cancel_during_the_relaunch(resources: Resources, factory: Factory) -> None:
    """Make the cached resource unusable, start a caller that relaunches it and
    cancel that caller (a run at its timeout) while the old one is closing."""
    (await resources.get("k", factory))["alive"] = False
    relaunch = asyncio.create_task(resources.get("k", factory, usable=_alive))
    async with asyncio.timeout(5):
        await factory.closing.wait()
    relaunch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await relaunch


async def test_a_caller_cancelled_during_a_relaunch_leaves_the_close_to_finish() -> None:
    resources, factory = Resources(), Factory(close_delay=0.2)
    await _cancel_during_the_relaunch(resources, factory)
    # The cancelled caller is gone at once; the close is not: it is the
    # resource's, and the next caller's new resource comes after it.
    assert factory.events == ["open 1"]
    second = await resources.get("k", factory, usable=_alive)
    assert second["number"] == 2
    assert factory.events == ["open 1", "close 1", "open 2"]
    await resources.aclose()
    assert factory.events == ["open 1", "close 1", "open 2", "close 2"]


async def test_close_waits_for_a_relaunch_close_under_way() -> None:
    resources, factory = Resources(), Factory(close_delay=0.2)
    await _cancel_during_the_relaunch(resources, factory)
    await resources.aclose()
    assert factory.events == ["open 1", "close 1"]


async def test_a_failed_close_at_a_relaunch_is_raised_at_close_not_to_the_caller() -> None:
    resources, factory = Resources(), Factory(close_error=True)
    (await resources.get("k", factory))["alive"] = False
    second = await resources.get("k", factory, usable=_alive)
    assert second["number"] == 2
    factory.close_error = False
    with pytest.raises(ExceptionGroup) as raised:
        await resources.aclose()
    assert [str(e) for e in raised.value.exceptions] == ["closing 1 failed"]
    assert factory.events == ["open 1", "close 1", "open 2", "close 2"]


async def test_close_waits_for_a_creation_under_way_and_closes_it() -> None:
    resources, factory = Resources(), Factory(delay=0.1)
    caller = asyncio.create_task(resources.get("k", factory))
    await asyncio.sleep(0)  # let it start creating
    await resources.aclose()
    with pytest.raises(RuntimeError, match="shutting down"):
        await caller
    assert factory.events == ["open 1", "close 1"]
    with pytest.raises(RuntimeError, match="shutting down"):
        await resources.get("k", factory)


async def test_resources_close_newest_first() -> None:
    order: list[str] = []
    resources, a, b = Resources(), Factory(name="a"), Factory(name="b")
    a.events = b.events = order
    await resources.get("a", a)
    await resources.get("b", b)
    await resources.aclose()
    assert order == ["open a1", "open b1", "close b1", "close a1"]
    assert len(resources) == 0

"""The sleep check, run through the same path as the daemon."""

from __future__ import annotations

import time
from importlib.metadata import entry_points

import pytest
from pydantic import ValidationError

from runner.builtins.sleep import Sleep
from runner.plugin import Status
from runner.testing import run_check


def test_registered_as_sleep() -> None:
    (entry,) = entry_points(group="runner.plugins", name="sleep")
    assert entry.load() is Sleep


async def test_sleeps_then_returns_ok() -> None:
    result = await run_check(Sleep, {"seconds": 0.05})

    assert result.status is Status.OK
    assert 0.05 <= result.fields["slept_s"] < 2


async def test_zero_seconds_is_ok() -> None:
    result = await run_check(Sleep, {"seconds": 0})

    assert result.status is Status.OK


async def test_longer_than_the_timeout_is_a_timeout() -> None:
    started = time.perf_counter()
    result = await run_check(Sleep, {"seconds": 5}, timeout=0.2)
    elapsed = time.perf_counter() - started

    assert result.status is Status.TIMEOUT
    assert result.message is not None and "0.2s" in result.message
    assert elapsed < 2, f"the timeout took {elapsed:.2f}s to stop a 5 s sleep"


@pytest.mark.parametrize(
    "seconds",
    [
        pytest.param(-1, id="negative"),
        pytest.param(float("inf"), id="infinite"),
        pytest.param(float("nan"), id="nan"),
        pytest.param("soon", id="not-a-number"),
    ],
)
async def test_bad_seconds_are_rejected(seconds: object) -> None:
    with pytest.raises(ValidationError, match="seconds"):
        await run_check(Sleep, {"seconds": seconds})


async def test_unknown_option_is_rejected() -> None:
    with pytest.raises(ValidationError, match="secs"):
        await run_check(Sleep, {"secs": 1})

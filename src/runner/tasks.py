"""Ending the tasks a component owns (a notifier's delivery, history's writer)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from runner.log import get_logger


async def cancel_and_wait(tasks: Collection[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has ended. One that had failed
    before is logged (``task.failed``), not raised: the others are still
    waited for.

    Unbounded: for tasks of our own, which end when cancelled. The caller's
    own cancellation still propagates.
    """
    for task in tasks:
        task.cancel()
    ended = await asyncio.gather(*tasks, return_exceptions=True)
    for task, outcome in zip(tasks, ended, strict=True):
        if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
            get_logger().error(
                "task.failed",
                task=task.get_name(),
                error=str(outcome),
                error_type=type(outcome).__name__,
            )

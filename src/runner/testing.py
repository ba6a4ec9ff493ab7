"""Helpers for testing plugins with pytest: run a check once, run a service.

These use the same code paths as the daemon (options validation, timeout,
error handling), so what passes here behaves the same under ``runner serve``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from runner.execution import run_check_once
from runner.plugin import Check, Result, Service, ServiceContext
from runner.resources import Resources

__all__ = ["run_check", "running_service"]


async def run_check(
    plugin: type[Check[Any]],
    options: Mapping[str, Any] | None = None,
    *,
    timeout: float = 10.0,
    job: str = "test",
    resources: Resources | None = None,
) -> Result:
    """Validate ``options`` with the plugin's model, run it once, return the result.

    Pass your own ``resources`` to share them across calls (and close them
    yourself with ``await resources.aclose()``); otherwise they are closed
    before this returns.
    """
    check = plugin(plugin.Options.model_validate(dict(options or {})))
    own = resources is None
    res = resources if resources is not None else Resources()
    try:
        outcome = await run_check_once(
            check, job=job, plugin=plugin.__name__, timeout=timeout, resources=res
        )
    finally:
        if own:
            await res.aclose()
    return outcome.result


@asynccontextmanager
async def running_service(
    plugin: type[Service[Any]],
    options: Mapping[str, Any] | None = None,
    *,
    job: str = "test",
    ready_timeout: float = 10.0,
) -> AsyncIterator[dict[str, Any]]:
    """Start a service, wait until it is ready, yield the fields it passed to ``ready()``.

    Raises whatever the service raised if it fails before becoming ready. On
    exit the service is cancelled and awaited, as the daemon would stop it.
    """
    service = plugin(plugin.Options.model_validate(dict(options or {})))
    resources = Resources()
    ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def on_ready(fields: dict[str, Any]) -> None:
        if not ready.done():
            ready.set_result(fields)

    ctx = ServiceContext(job=job, plugin=plugin.__name__, resources=resources, on_ready=on_ready)
    task: asyncio.Future[Any] = asyncio.create_task(service.serve(ctx), name=f"service:{job}")
    try:
        async with asyncio.timeout(ready_timeout):
            done, _ = await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
        if task in done and not ready.done():
            task.result()  # raises the service's error
            raise RuntimeError(f"service {job!r} returned before it called ctx.ready()")
        yield ready.result()
    finally:
        task.cancel()
        try:
            await asyncio.gather(task, return_exceptions=True)
        finally:
            await resources.aclose()

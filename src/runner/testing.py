"""Helpers for testing plugins with pytest: run a check once, run a service.

These use the same code paths as the daemon (options validation, timeout,
error handling), so what passes here behaves the same under ``runner serve``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from runner.config import load_config
from runner.daemon import Daemon
from runner.execution import AbandonedRuns, run_in_task
from runner.model import JobState, RunRecord
from runner.plugin import Check, Plugin, Result, Service, ServiceContext
from runner.registry import Registry
from runner.resources import Resources

__all__ = ["DaemonUnderTest", "run_check", "running_daemon", "running_service"]

#: Runs of :func:`run_check` whose plugin ignored cancellation, kept
#: referenced until they end (as the daemon's scheduler keeps its own).
_abandoned = AbandonedRuns()


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
    before this returns. The run is the daemon's (``runner.execution``), in a
    task of its own: a plugin that ignores cancellation is left behind and
    this returns a ``timeout`` result within ``timeout`` + 1 s.
    """
    check = plugin(plugin.Options.model_validate(dict(options or {})))
    own = resources is None
    res = resources if resources is not None else Resources()
    try:
        record = await run_in_task(
            check,
            job=job,
            plugin=_entry_point_name(plugin),
            timeout=timeout,
            resources=res,
            abandoned=_abandoned,
        )
    finally:
        if own:
            await res.aclose()
    return record.result


def _entry_point_name(plugin: type[Plugin[Any]]) -> str:
    """The name the daemon would give ``plugin`` (its entry point), else its class name."""
    target = f"{plugin.__module__}:{plugin.__qualname__}"
    for entry in Registry.discover():
        if entry.value.replace(" ", "") == target:
            return entry.name
    return plugin.__name__


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

    ctx = ServiceContext(
        job=job, plugin=_entry_point_name(plugin), resources=resources, on_ready=on_ready
    )
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


class DaemonUnderTest:
    """A daemon running in-process, and every result it produced so far.

    ``daemon.hub.states`` holds each job's state (ok or failing, since when).
    """

    def __init__(self) -> None:
        self.daemon: Daemon
        #: One dict per finished run, as logged: job, plugin, status, duration_ms, ...
        self.results: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    async def start(self, exit_stack: AsyncExitStack) -> None:
        """A result sink needs nothing started."""

    def submit(self, record: RunRecord, state: JobState) -> None:
        """The daemon's result sink."""
        self.results.append(record.as_logged())
        self._changed.set()

    def results_for(self, job: str) -> list[dict[str, Any]]:
        return [r for r in self.results if r["job"] == job]

    async def wait_for_results(
        self, job: str, count: int = 1, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Wait until ``job`` has finished ``count`` runs; return their results."""
        async with asyncio.timeout(timeout):
            while len(self.results_for(job)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.results_for(job)

    async def reload(self) -> bool:
        """Re-read the config file, as SIGHUP would; False if it was refused."""
        return await self.daemon.reload()


@asynccontextmanager
async def running_daemon(
    config: str | os.PathLike[str], *, ready_timeout: float = 30.0, history: bool = False
) -> AsyncIterator[DaemonUnderTest]:
    """Run a whole daemon in-process for the duration of the block.

    ``config`` is the path of a YAML config. The daemon is started as
    ``runner serve`` would (services first, then checks), without taking
    over the process's signals, and stopped cleanly on exit. History is off
    unless ``history=True`` (then it goes where the config says).
    """
    recorder = DaemonUnderTest()
    recorder.daemon = Daemon(
        load_config(config, keep_unloadable=True), sinks=[recorder], history=history
    )
    task = asyncio.create_task(recorder.daemon.serve(handle_signals=False), name="runner-daemon")
    running = asyncio.create_task(recorder.daemon.running.wait())
    try:
        async with asyncio.timeout(ready_timeout):
            await asyncio.wait([task, running], return_when=asyncio.FIRST_COMPLETED)
        if not running.done():
            task.result()  # raises what made the daemon stop
            raise RuntimeError("the daemon stopped before it was running")
        yield recorder
    finally:
        running.cancel()
        recorder.daemon.request_stop("test finished")
        await asyncio.gather(task, running, return_exceptions=True)

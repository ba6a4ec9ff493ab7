"""The daemon's lifecycle: start, run until a signal, stop in a fixed order.

Start: open the scheduler, start services and checks, wait briefly for the
services to bind so the log says what is listening. Stop (SIGTERM or SIGINT):
cancel every job (in-flight runs included) and wait for them within a grace
period, then close shared resources (the browser) last, so that nothing a
job still uses disappears under it. A second signal skips the grace period.

Reload and readiness notification hook in here: ``Daemon`` keeps the running
config and the scheduler keeps jobs by name, so a reload is a diff.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence
from enum import Enum
from typing import Any

from runner import __version__
from runner.config import Config, Job
from runner.execution import Outcome
from runner.log import get_logger, secret_masker
from runner.resources import Resources
from runner.results import LogSink, ResultSink
from runner.scheduler import Scheduler

#: How long services get to bind before the daemon reports itself started.
SERVICE_START_WAIT = 10.0
#: How long jobs get to finish after cancellation at shutdown.
STOP_GRACE = 5.0


class RunState(Enum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Daemon:
    """Runs a config's jobs on the current event loop."""

    def __init__(self, config: Config, sinks: Sequence[ResultSink] | None = None) -> None:
        self.config = config
        self.resources = Resources()
        self.scheduler = Scheduler(self.resources, sinks if sinks is not None else [LogSink()])
        self.state = RunState.STOPPED
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._force = False
        self._log = get_logger()
        #: After run_once: services that never became ready.
        self.services_not_ready: list[str] = []
        secret_masker.set(config.secrets)

    def request_stop(self, reason: str = "requested") -> None:
        """Ask the daemon to stop; a second request skips the grace period."""
        if self._stop.is_set():
            self._force = True
            self._log.warning("daemon.force_stop", reason=reason)
            return
        self._stop_reason = reason
        self._stop.set()

    async def serve(self) -> int:
        """Run until :meth:`request_stop` or SIGTERM/SIGINT. Returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        try:
            await self._start()
            await self._stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self._shutdown()
        return 0

    async def _start(self) -> None:
        self.state = RunState.STARTING
        config = self.config
        self._log.info(
            "daemon.starting",
            version=__version__,
            config=str(config.path),
            pid=os.getpid(),
            jobs=len(config.jobs),
            checks=len(config.checks),
            services=len(config.services),
        )
        for job, reason in config.unloadable:
            self._log.error("plugin.load_failed", job=job, error=reason)
        # Services first, so the first checks can reach what they host.
        self.scheduler.start_all(config.services)
        not_ready = await self.scheduler.wait_settled(SERVICE_START_WAIT)
        self.scheduler.start_all(config.checks)
        self.state = RunState.RUNNING
        self._log.info(
            "daemon.started",
            jobs=len(config.jobs),
            services_not_ready=[h.job.name for h in not_ready] or None,
        )

    async def _shutdown(self) -> None:
        self.state = RunState.STOPPING
        self._log.info("daemon.stopping", reason=self._stop_reason or "error")
        await self.scheduler.stop_all(grace=0.0 if self._force else STOP_GRACE)
        try:
            await self.resources.aclose()
        except Exception as exc:
            self._log.error("resources.close_failed", error=repr(exc))
        self.state = RunState.STOPPED
        self._log.info("daemon.stopped", **dict(self.scheduler.totals))

    async def _run_and_record(self, job: Job) -> Outcome:
        outcome = await self.scheduler.run_once(job)
        self.scheduler.record(job, outcome)  # as each finishes, not all at the end
        return outcome

    async def run_once(self, jobs: Sequence[Job]) -> list[tuple[Job, Outcome]]:
        """Start the services, run each check in ``jobs`` once (concurrently), stop.

        Used by ``runner run``. Results go to the sinks as well as being returned.
        """
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        try:
            self.scheduler.start_all(self.config.services)
            not_ready = await self.scheduler.wait_settled(SERVICE_START_WAIT)
            for handle in not_ready:
                self._log.error("service.not_ready", job=handle.job.name, error=handle.last_error)
            self.services_not_ready = [h.job.name for h in not_ready]
            runs = asyncio.gather(*(self._run_and_record(job) for job in jobs))
            stop = asyncio.ensure_future(self._stop.wait())
            waiters: list[asyncio.Future[Any]] = [runs, stop]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if not runs.done():
                runs.cancel()
                await asyncio.gather(runs, return_exceptions=True)
                raise asyncio.CancelledError(self._stop_reason)
            stop.cancel()
            return list(zip(jobs, runs.result(), strict=True))
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.scheduler.stop_all(grace=STOP_GRACE)
            await self.resources.aclose()

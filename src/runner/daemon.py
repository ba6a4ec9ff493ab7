"""The daemon's lifecycle: start, run until a signal, reload, stop in a fixed order.

One lifetime for ``runner serve`` and ``runner run`` (:meth:`Daemon._lifetime`):
each component (signal handlers, the blocked-loop watcher, shared resources,
each result sink such as history, the jobs) is started into one
``AsyncExitStack`` and pushes its own cleanup, so shutdown is start-up in
reverse: jobs stop first, then sinks flush (every result reaches history),
then shared resources (the browser) close.

Start: start services, wait for them to bind (or fail), then start checks;
tell systemd READY=1 only then. SIGHUP: re-read the config; if it is
invalid, keep everything as it was; if valid, apply the difference by job
name: unchanged jobs keep running untouched (same task, same schedule, a
listener keeps its open connections), removed jobs stop, changed and added
jobs (re)start. Stop (SIGTERM or SIGINT): cancel every job (in-flight runs
included) and wait for them within a grace period, then close shared
resources (the browser) last, so that nothing a job still uses disappears
under it. A second stop signal ends the wait at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import signal
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from enum import Enum
from typing import TYPE_CHECKING, Any

from runner import __version__, heap
from runner.cluster import ClusterRefused
from runner.config import Config, ConfigError, load_config
from runner.config_probe import ProbeFailed, probe
from runner.log import get_logger, secret_masker
from runner.loop_monitor import DEFAULT_THRESHOLD, LoopMonitor
from runner.loops import loop_name
from runner.model import Job, JobState, Maintenance, RunRecord
from runner.pings import Ping, PingedCheck
from runner.resources import Resources
from runner.results import LogSink, ResultHub, Sink
from runner.scheduler import Scheduler
from runner.status import (
    ClusterCounts,
    HistoryCounts,
    LocationStatus,
    RunStats,
    StatusRow,
    status_rows,
)
from runner.systemd import SystemdNotifier
from runner.tasks import cancel_and_wait

if TYPE_CHECKING:
    # Imported where a config uses them (notifiers, history, http), not at
    # start-up: see "Start-up cost" in README.md.
    from runner.alerts import AlertSink
    from runner.cluster.member import ClusterMember
    from runner.history import HistorySink
    from runner.web import WebEndpoint

#: How long services get to bind before the daemon reports itself ready.
SERVICE_START_WAIT = 10.0
#: How long jobs get to finish after cancellation at shutdown.
STOP_GRACE = 5.0
#: runner serve settles its heap (runner.heap) this long after READY.
SETTLE_AFTER_START = 1.0
#: How long a reload may take to read and validate the new config.
RELOAD_TIMEOUT = 10.0
#: How often the one-line STATUS for systemd is refreshed.
STATUS_EVERY = 10.0
#: runner serve's exit code when the daemon cannot join its cluster (as for a bad config).
EXIT_REFUSED = 2


class ReloadRefused(RuntimeError):
    """A new config that the reload does not apply: its problems, or why it could
    not be read."""

    def __init__(self, reason: str, problems: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.problems = list(problems)


class RunState(Enum):
    STARTING = "starting"
    RUNNING = "running"
    RELOADING = "reloading"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Daemon:
    """Runs a config's jobs on the current event loop.

    Args:
        config: the loaded config.
        sinks: where results go besides history; default: the log.
        systemd: the sd_notify client; default: none (tests, ``runner run``).
        history: store results in the history the config names (on by
            default; ``history: {enabled: false}`` in the config turns it off).
        member: this daemon's member name when the config has ``cluster:``
            (``runner serve``): it then runs only its share of the checks
            (runner.cluster). None: every check, as without ``cluster:``.
        location: where this member is (``--location``): it runs the checks
            with ``locations:`` that list it, for that location.
    """

    def __init__(
        self,
        config: Config,
        sinks: Iterable[Sink] | None = None,
        *,
        systemd: SystemdNotifier | None = None,
        loop_lag_threshold: float = DEFAULT_THRESHOLD,
        history: bool = True,
        settle_heap: bool = False,
        member: str | None = None,
        location: str | None = None,
    ) -> None:
        self.config = config
        #: Freeze what lives as long as the daemon out of the collector's walks
        #: after start-up and each reload (``runner serve``; see runner.heap).
        self.settle_heap = settle_heap
        self.resources = Resources()
        self.history: HistorySink | None = None
        if history and config.history.enabled:
            from runner.history import HistorySink

            self.history = HistorySink.from_config(config)
        all_sinks: list[Sink] = list(sinks) if sinks is not None else [LogSink()]
        if self.history is not None:
            all_sinks.append(self.history)
        self.alerts: AlertSink | None = None
        if config.notifiers:
            from runner.alerts import AlertSink

            ledger = self.history.store if self.history is not None else None
            page = config.http.external_url if config.http is not None else None
            self.alerts = AlertSink(
                config.notifiers, config.jobs, self.resources, ledger, status_page=page
            )
            all_sinks.append(self.alerts)
        self.hub = ResultHub(all_sinks)
        self.hub.maintenance = config.maintenance
        self.scheduler = Scheduler(self.resources, self.hub)
        self.cluster: ClusterMember | None = None
        if config.cluster is not None and member is not None:
            from runner.cluster.member import ClusterMember

            self.cluster = ClusterMember(
                config,
                member,
                self.scheduler,
                self.hub,
                history=self.history,
                alerts=self.alerts,
                on_lost=self.request_stop,
                location=location,
            )
            self.hub.member = member
            self.hub.location = location
            self.scheduler.gate = self.cluster.may_run
            from runner.cluster.quorum import QuorumSink

            self.quorum: QuorumSink | None = QuorumSink(self.cluster, config.checks, self.alerts)
            self.hub.sinks.append(self.quorum)
        else:
            self.quorum = None
        #: What the endpoint and the metrics see of the daemon (runner.status.StatusView).
        self.view = DaemonView(self)
        self.web: WebEndpoint | None = None
        if config.http is not None:
            from runner.web import WebEndpoint

            self.web = WebEndpoint(self.view, config.http, pings=self.view)
        self.systemd = systemd if systemd is not None else SystemdNotifier.from_environ({})
        self.loop_monitor = LoopMonitor(loop_lag_threshold)
        self.state = RunState.STOPPED
        #: Set once every job has been started (after services bound or failed).
        self.running = asyncio.Event()
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._stop_reason = ""
        self._reload_wanted = asyncio.Event()
        self._reading: asyncio.Future[Config] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._log = get_logger()
        secret_masker.set(config.secrets)

    # ------------------------------------------------------------------ requests

    #: A second request for the same reason this soon after the first is the
    #: same request: coreutils' ``timeout`` signals the daemon, then its
    #: process group (the daemon again), a few milliseconds apart.
    SAME_REQUEST_WITHIN = 0.5
    #: When the stop was first requested (``time.monotonic``).
    _stop_requested_at = 0.0

    def request_stop(self, reason: str = "requested") -> None:
        """Ask the daemon to stop; a second request skips the grace period.

        The same request again (the same ``reason``, such as the same signal)
        within :attr:`SAME_REQUEST_WITHIN` of the first is not a second one.
        """
        now = time.monotonic()
        if self._stop.is_set():
            if (
                reason == self._stop_reason
                and now - self._stop_requested_at < self.SAME_REQUEST_WITHIN
            ):
                self._log.info("daemon.stop_repeated", reason=reason)
                return
            self._force.set()
            self._log.warning("daemon.force_stop", reason=reason)
            return
        self._stop_reason = reason
        self._stop_requested_at = now
        self._stop.set()

    def request_reload(self) -> None:
        """Ask for the config to be re-read; requests during a reload coalesce."""
        self._reload_wanted.set()

    # ------------------------------------------------------------------ the lifetime

    @asynccontextmanager
    async def _lifetime(
        self, signals: Sequence[signal.Signals], *, serve_http: bool = True
    ) -> AsyncIterator[None]:
        """Start every component into one exit stack; on exit, stop them in reverse."""
        loop = asyncio.get_running_loop()
        self.state = RunState.STARTING
        self._log.info(
            "daemon.starting",
            version=__version__,
            config=str(self.config.path),
            pid=os.getpid(),
            loop=loop_name(loop),
            jobs=len(self.config.jobs),
            checks=len(self.config.checks),
            services=len(self.config.services),
        )
        async with AsyncExitStack() as stack:
            for sig in signals:
                if sig is signal.SIGHUP:
                    loop.add_signal_handler(sig, self.request_reload)
                else:
                    loop.add_signal_handler(sig, self.request_stop, sig.name)
                stack.callback(loop.remove_signal_handler, sig)
            if not signals:  # in-process (tests): hand the loop back as it was
                stack.callback(loop.set_exception_handler, loop.get_exception_handler())
            loop.set_exception_handler(self._on_loop_exception)
            if self.cluster is not None:
                # First: a duplicate member name or a database that refuses the
                # login ends the start here, with nothing else started.
                await self.cluster.join()
            self.loop_monitor.start()
            stack.push_async_callback(self.loop_monitor.stop)
            stack.callback(self._stopped)
            stack.push_async_callback(self._close_resources)
            for sink in self.hub.sinks:
                await sink.start(stack)
            if self.history is not None:
                # "Failing since 03:12" survives a restart, and so does a
                # down_when/up_when window half full (only those jobs' last
                # statuses are read back: a rule in a row needs only its count).
                windows = {j.name: j.thresholds.window for j in self.config.checks}
                recent = {name: n for name, n in windows.items() if n}
                self.hub.seed(await self.history.load_states(recent))
            if self.web is not None and serve_http:
                await self.web.start(stack)
            stack.push_async_callback(self._stop_jobs)
            if self.cluster is not None:
                # Runs before _stop_jobs: the checks stop here, then are released.
                stack.push_async_callback(self.cluster.stop)
            try:
                yield
            finally:
                self.state = RunState.STOPPING
                self.systemd.stopping()
                self._log.info("daemon.stopping", reason=self._stop_reason or "error")

    async def _stop_jobs(self) -> None:
        await cancel_and_wait(list(self._background))
        stopping = asyncio.create_task(self.scheduler.stop_all(grace=STOP_GRACE))
        forced = asyncio.create_task(self._force.wait())
        await asyncio.wait([stopping, forced], return_when=asyncio.FIRST_COMPLETED)
        forced.cancel()
        if not stopping.done():
            self._log.warning("daemon.stop_forced", hint="jobs were not waited for")
            stopping.cancel()
            await asyncio.gather(stopping, return_exceptions=True)

    async def _close_resources(self) -> None:
        try:
            await self.resources.aclose()
        except Exception as exc:
            self._log.error("resources.close_failed", error=repr(exc))

    def _stopped(self) -> None:
        self.state = RunState.STOPPED
        totals = dict(self.hub.totals())
        if self.scheduler.service_failures:
            totals["service_failures"] = self.scheduler.service_failures
        if self.scheduler.abandoned.count:
            totals["abandoned"] = self.scheduler.abandoned.count
        self._log.info("daemon.stopped", **totals)
        self.systemd.close()

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Errors nobody awaited (a callback that raised, a future never read) go to the
        structured log, not to stderr as text."""
        exc = context.get("exception")
        # Libraries torn down at shutdown (Playwright's driver) leave such
        # futures behind; that is expected then, and not worth an error.
        quiet = self.state in (RunState.STOPPING, RunState.STOPPED)
        log = self._log.debug if quiet else self._log.error
        log(
            "loop.unhandled_exception",
            message=context.get("message"),
            error=str(exc) if exc is not None else None,
            error_type=type(exc).__name__ if exc is not None else None,
        )

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"daemon:{name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ serve

    async def serve(self, *, handle_signals: bool = True) -> int:
        """Run until :meth:`request_stop` or SIGTERM/SIGINT. Returns the exit code.

        ``handle_signals=False`` leaves signal handling to the caller (tests
        running a daemon in-process), who calls :meth:`request_stop` and
        :meth:`request_reload` instead.
        """
        signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP) if handle_signals else ()
        try:
            return await self._serve(signals)
        except ClusterRefused as exc:
            self._log.error("cluster.refused", error=str(exc))
            return EXIT_REFUSED

    async def _serve(self, signals: Sequence[signal.Signals]) -> int:
        async with self._lifetime(signals):
            for job, reason in self.config.unloadable:
                self._log.error("plugin.load_failed", job=job, error=reason)
            await self._start_jobs(self.config.jobs)
            settle: asyncio.TimerHandle | None = None
            if self.settle_heap:
                # A moment after READY, not before it: the collection takes
                # 10 ms of a small daemon's 150 ms start, and by then the
                # first runs (spread over the first second) are under way.
                settle = asyncio.get_running_loop().call_later(
                    SETTLE_AFTER_START, heap.settle, "started"
                )
            self.state = RunState.RUNNING
            self.running.set()
            not_ready = self.services_not_ready()
            self._log.info(
                "daemon.started", jobs=len(self.config.jobs), services_not_ready=not_ready
            )
            self.systemd.ready(self.status_line())
            self._spawn(self._reloader(), "reloader")
            if self.systemd.enabled:  # nobody else reads STATUS=: an idle daemon stays asleep
                self._spawn(self._status_updater(), "status")
            if self.systemd.watchdog_interval:
                self._spawn(self._watchdog(self.systemd.watchdog_interval), "watchdog")
            try:
                await self._stop.wait()
            finally:
                if settle is not None:
                    settle.cancel()
        return 0

    async def _start_jobs(self, jobs: Sequence[Job], *, reload: bool = False) -> None:
        # Services first, so the first checks can reach what they host.
        for job in jobs:
            if job.is_service:
                self.scheduler.start(job)
        await self.scheduler.wait_settled(SERVICE_START_WAIT)
        if self.cluster is not None:
            # In a cluster the checks this member runs are its share of them.
            if not reload:
                await self.cluster.begin()
            return
        for job in jobs:
            if not job.is_service:
                self.scheduler.start(job)

    def services_not_ready(self) -> list[str]:
        """Services that are not up now."""
        return sorted(
            s.job for s in self.hub.states.values() if s.kind == "service" and not s.ready
        )

    def status_line(self) -> str:
        """One line for systemd's STATUS=: job counts and what is failing now."""
        states = list(self.hub.states.values())
        failing = sorted(s.job for s in states if s.is_failing)
        services = sum(s.kind == "service" for s in states)
        line = f"{len(states) - services} checks, {services} services"
        if self.cluster is not None:
            line = (
                f"member {self.cluster.name} of {self.cluster.cluster}: {len(states) - services} "
                f"of {len(self.config.checks)} checks here, {services} services"
            )
        if failing:
            more = f" and {len(failing) - 5} more" if len(failing) > 5 else ""
            line += f"; failing: {', '.join(failing[:5])}{more}"
        else:
            line += "; all ok"
        return line

    async def _status_updater(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY)
            self.systemd.status(self.status_line())

    async def _watchdog(self, interval: float) -> None:
        # Pinged from the loop itself: a blocked loop stops the pings and
        # systemd restarts the service.
        while True:
            self.systemd.watchdog()
            await asyncio.sleep(interval)

    # ------------------------------------------------------------------ reload

    async def _reloader(self) -> None:
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            await self.reload()

    async def reload(self) -> bool:
        """Re-read the config file and apply it. Returns False if it was refused."""
        self.state = RunState.RELOADING
        self.systemd.reloading()
        self._log.info("daemon.reloading", config=str(self.config.path))
        try:
            try:
                new = await self._read_config()
            except (ConfigError, ReloadRefused) as exc:
                problems = (
                    exc.problems
                    if isinstance(exc, ReloadRefused)
                    else [p.format(str(exc.path)) for p in exc.problems]
                ) or [f"{self.config.path}: {exc}"]
                self._log.error("reload.refused", config=str(self.config.path), problems=problems)
                self.systemd.ready(
                    f"reload refused ({len(problems)} problems), running the previous config; "
                    + self.status_line()
                )
                return False
            except Exception as exc:  # a bug or a bound crossed: never the daemon's end
                self._log.error(
                    "reload.refused",
                    config=str(self.config.path),
                    error=str(exc) or type(exc).__name__,
                    error_type=type(exc).__name__,
                )
                self.systemd.ready(
                    "reload refused, running the previous config; " + self.status_line()
                )
                return False
            await self._apply(new)
            if self.settle_heap:
                heap.settle("reloaded")
            self.systemd.ready(self.status_line())
            return True
        finally:
            if self.state is RunState.RELOADING:
                self.state = RunState.RUNNING

    async def _read_config(self) -> Config:
        """Validate the config file in a child process, then read it off the event loop.

        Checks keep running whatever the new file holds: a child process
        (:mod:`runner.config_probe`) validates it first, within
        ``RELOAD_TIMEOUT`` and ``config_probe.MEMORY_LIMIT``, so a hostile file
        costs the daemon neither time nor memory; only a file that passed is
        then read here, in a thread. A reload while a read still runs is
        refused rather than stacked.
        """
        if self._reading is not None and not self._reading.done():
            raise ReloadRefused("the previous reload is still reading the config")
        try:
            problems = await probe(self.config.path, RELOAD_TIMEOUT)
        except ProbeFailed as exc:
            raise ReloadRefused(str(exc)) from None
        if problems:
            raise ReloadRefused(f"{len(problems)} problems", problems)
        self._reading = asyncio.ensure_future(
            asyncio.to_thread(load_config, self.config.path, keep_unloadable=True)
        )
        try:
            return await asyncio.wait_for(asyncio.shield(self._reading), RELOAD_TIMEOUT)
        except TimeoutError:
            raise ReloadRefused(
                f"reading the config took longer than {RELOAD_TIMEOUT:g}s"
            ) from None

    async def _apply(self, new: Config) -> None:
        old_jobs = {j.name: j for j in self.config.jobs}
        new_jobs = {j.name: j for j in new.jobs}
        removed = [n for n in old_jobs if n not in new_jobs]
        added = [n for n in new_jobs if n not in old_jobs]
        changed = [
            n
            for n in old_jobs
            if n in new_jobs and old_jobs[n].fingerprint() != new_jobs[n].fingerprint()
        ]
        kept = [n for n in old_jobs if n in new_jobs and n not in changed]
        # Stop first: a changed listener must release its port before its
        # new version binds it.
        await self.scheduler.stop([*removed, *changed], grace=STOP_GRACE)
        for name in removed:
            self.hub.forget(name)
        if new.history != self.config.history:
            self._log.warning(
                "reload.history_unchanged",
                hint="history settings are read at start; restart the daemon to apply them",
            )
        if new.cluster != self.config.cluster:
            self._log.warning(
                "reload.cluster_unchanged",
                hint="cluster settings are read at start; restart the daemon to apply them",
            )
        if _notifier_settings(new) != _notifier_settings(self.config):
            self._log.warning(
                "reload.notifiers_unchanged",
                hint="notifiers are set up at start; restart the daemon to apply changes to them",
            )
        if self.alerts is not None:
            self.alerts.update_jobs(new.jobs)
        if self.quorum is not None:
            self.quorum.update_jobs(new.checks)
        secret_masker.set(self.config.secrets | new.secrets)
        self.config = new
        self.hub.maintenance = new.maintenance
        for job, reason in new.unloadable:
            if job in added or job in changed:
                self._log.error("plugin.load_failed", job=job, error=reason)
        await self._start_jobs([new_jobs[n] for n in [*changed, *added]], reload=True)
        if self.cluster is not None:
            await self.cluster.apply(new)
        self._log.info(
            "daemon.reloaded",
            config=str(new.path),
            added=added,
            removed=removed,
            changed=changed,
            kept=kept,
            maintenance=[w.name for w in new.maintenance.windows],
        )

    # ------------------------------------------------------------------ run once

    async def run_once(self, jobs: Sequence[Job]) -> list[RunRecord]:
        """Start the services, run each check in ``jobs`` once (concurrently), stop.

        Used by ``runner run``. Returns the records in the order of ``jobs``;
        the scheduler publishes them to the hub (and so to the sinks) as each
        finishes.
        Services that did not start are in :meth:`services_not_ready` and
        the hub's state.
        """
        # One run of the checks serves no status page (and takes no port that a
        # running daemon of the same config holds).
        async with self._lifetime((signal.SIGTERM, signal.SIGINT), serve_http=False):
            for job in self.config.services:
                self.scheduler.start(job)
            await self.scheduler.wait_settled(SERVICE_START_WAIT)
            for name in self.services_not_ready():
                error = self.hub.state(name).last_error
                self._log.error("service.not_ready", job=name, error=error)
            self.state = RunState.RUNNING
            runs = asyncio.gather(*(self.scheduler.run_once(job) for job in jobs))
            stop = asyncio.ensure_future(self._stop.wait())
            waiters: list[asyncio.Future[Any]] = [runs, stop]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if not runs.done():
                runs.cancel()  # the runs themselves stop with the jobs (_stop_jobs)
                raise asyncio.CancelledError(self._stop_reason)
            stop.cancel()
            self._stop_reason = "finished"
            return list(runs.result())


class DaemonView:
    """What the HTTP endpoint and the metrics show of a :class:`Daemon`: a
    :class:`runner.status.StatusView`, read from the daemon's hub, history,
    alerts and loop monitor as they are at each call (a reload replaces the
    config)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._log = get_logger()
        self._targets: _PingTargets | None = None

    def states(self) -> Mapping[str, JobState]:
        return self._daemon.hub.states

    async def status_rows(self) -> list[StatusRow]:
        """Each check's state as the hub has it now (history is up to ``flush_every``
        behind), with uptime and latency from history when it is on."""
        daemon = self._daemon
        checks = daemon.config.checks
        stats: Mapping[str, RunStats] = {}
        history = daemon.history
        now = time.time()
        states, places = await self._shown()
        if history is not None and history.opened:
            try:
                stats = await history.store.stats([job.name for job in checks], now)
            except Exception as exc:
                self._log.warning("history.read_failed", error=str(exc))
        return status_rows(checks, states, stats, daemon.hub.maintenance, now, places)

    async def shown_states(self) -> Mapping[str, JobState]:
        """The hub's states; in a cluster, with the checks the other members run
        as they stored them (up to their ``flush_every`` behind), and the
        checks with ``locations:`` as their quorum decides: one view of the
        cluster from any member."""
        return (await self._shown())[0]

    async def _shown(
        self,
    ) -> tuple[Mapping[str, JobState], Mapping[str, tuple[LocationStatus, ...]] | None]:
        daemon = self._daemon
        states = daemon.hub.states
        history = daemon.history
        cluster = daemon.cluster
        if cluster is None or history is None or not history.opened:
            return states, None
        others = [job.name for job in daemon.config.checks if job.name not in states]
        if others:
            try:
                stored = await history.store.load_states(others)
            except Exception as exc:
                self._log.warning("history.read_failed", error=str(exc))
            else:
                states = {**{s.job: s for s in stored}, **states}
        located = [job for job in daemon.config.checks if job.locations is not None]
        if not located:
            return states, None
        from runner.cluster.quorum import shown

        try:
            latest, incidents = await cluster.store.read_locations([j.name for j in located])
        except Exception as exc:
            self._log.warning("cluster.read_failed", error=str(exc) or type(exc).__name__)
            return states, None
        combined, places = shown(
            located, states, latest, incidents, cluster.live_locations, cluster.known_locations
        )
        return {**states, **combined}, places

    async def runs(
        self, job: str, *, since: float | None, status: str | None, limit: int
    ) -> list[RunRecord] | None:
        history = self._daemon.history
        if history is None:
            return None
        return await history.store.runs(job, since=since, status=status, limit=limit)

    def loop_lag(self) -> float:
        return self._daemon.loop_monitor.lag

    def maintenance(self) -> Maintenance:
        return self._daemon.hub.maintenance

    def history_counts(self) -> HistoryCounts | None:
        history = self._daemon.history
        if history is None:
            return None
        return HistoryCounts(history.written, history.dropped, history.queued, history.lag)

    def cluster_counts(self) -> ClusterCounts | None:
        cluster = self._daemon.cluster
        if cluster is None:
            return None
        return ClusterCounts(len(cluster.members), len(cluster.owned), cluster.store_up)

    def notifier_counts(self) -> Mapping[str, Mapping[str, int]] | None:
        alerts = self._daemon.alerts
        return None if alerts is None else alerts.stats()

    def ping_target(self, target: str) -> tuple[str, bool] | None:
        """The pinged job (heartbeat) that ``/ping/<target>`` names, and whether
        ``target`` is its ping_key (else it is its name: a job without a key)."""
        config = self._daemon.config
        if self._targets is None or self._targets.config is not config:
            self._targets = _PingTargets(config)  # made once per config (start, reload)
        return self._targets.find(target)

    def ping(self, job: str, ping: Ping) -> bool:
        """Hand ``ping`` to the job's check; False when no such job runs. In a
        cluster, a ping for a check another member runs is kept for it."""
        daemon = self._daemon
        if daemon.scheduler.ping(job, ping):
            return True
        return daemon.cluster is not None and daemon.cluster.relay_ping(job, ping)


class _PingTargets:
    """The pinged jobs of a config, by ping_key and by name.

    A key is looked up by its SHA-256 (so the lookup's time tells nothing of
    the key) and then compared in constant time. A job with a key is not
    found by its name.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.by_key: dict[bytes, tuple[bytes, str]] = {}
        self.by_name: set[str] = set()
        for job in config.checks:
            if not issubclass(job.plugin, PingedCheck):
                continue
            key = job.plugin.ping_key(job.options)
            if key is None:
                self.by_name.add(job.name)
            else:
                secret = key.encode()
                self.by_key[hashlib.sha256(secret).digest()] = (secret, job.name)

    def find(self, target: str) -> tuple[str, bool] | None:
        given = target.encode("utf-8", "surrogateescape")
        found = self.by_key.get(hashlib.sha256(given).digest())
        if found is not None and hmac.compare_digest(found[0], given):
            return found[1], True
        if target in self.by_name:
            return target, False
        return None


def _notifier_settings(config: Config) -> list[tuple[Any, ...]]:
    return [
        (n.name, n.notifier_name, n.send_on_resolved, n.repeat_every, n.options.model_dump_json())
        for n in config.notifiers
    ]

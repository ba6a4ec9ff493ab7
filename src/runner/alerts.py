"""Alerts: telling a job's notifiers when it goes down and when it recovers.

:class:`AlertSink` is a result sink. The hub decides when a job is down
(``failure_threshold`` non-ok results in a row, or ``down_when``: so many of
the last so many) and when it has recovered (``success_threshold`` ok results
in a row, or ``up_when``), by the job's :class:`~runner.model.Thresholds`, and
marks that state's ``transition``; this sink turns transitions into :class:`Alert` objects for
the notifiers the job names, plus reminders every ``repeat_every`` while the
job stays down.

Delivery never slows a check: each notifier has a bounded queue and a task
of its own that calls its ``send``. A failure is logged once per episode
(``alert.failed``, then ``alert.delivered_again``) and counted.

What was sent is kept in a ledger (the history's ``runner_alerts`` table when
history is on), so a restart in the middle of an outage neither pages again
for an incident already sent nor forgets one that was not: on each job's
first result after start, an alert the ledger lacks for the current episode
is sent then.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from typing import Any, Protocol
from urllib.parse import quote

from runner.log import get_logger
from runner.model import Job, JobState, NotifierConfig, RunRecord, Sent
from runner.notifier import Alert, AlertEvent, Notifier, NotifyContext
from runner.resources import Resources
from runner.tasks import cancel_and_wait

#: One send may take this long (the notifier's own retries included) before it is given up.
SEND_TIMEOUT = 300.0
#: At stop, how long an alert already being sent gets to finish, so that the
#: receiver and the ledger agree (a restart then neither pages again for it
#: nor forgets it). Alerts still queued wait for the next start's reconcile.
CLOSE_GRACE = 5.0
#: Alerts waiting for one notifier; past this the oldest are dropped (and counted).
MAX_QUEUE = 1000


class AlertLedger(Protocol):
    """Where deliveries are remembered across restarts (the history store)."""

    async def load_alerts(self) -> dict[tuple[str, str], Sent]: ...

    async def record_alert(self, job: str, notifier: str, sent: Sent) -> None: ...


class MemoryLedger:
    """The ledger when history is off: forgotten at exit."""

    def __init__(self) -> None:
        self.sent: dict[tuple[str, str], Sent] = {}

    async def load_alerts(self) -> dict[tuple[str, str], Sent]:
        return dict(self.sent)

    async def record_alert(self, job: str, notifier: str, sent: Sent) -> None:
        self.sent[(job, notifier)] = sent


class Delivery:
    """One notifier: its queue, and the task that sends from it."""

    def __init__(
        self,
        config: NotifierConfig,
        instance: Notifier[Any],
        resources: Resources,
        ledger: AlertLedger,
    ) -> None:
        self.config = config
        self.instance = instance
        self.resources = resources
        self.ledger = ledger
        self.queue: deque[Alert] = deque(maxlen=MAX_QUEUE)
        self._wake = asyncio.Event()
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._failing = False
        self._stopping = False
        self._log = get_logger().bind(notifier=config.name)

    def put(self, alert: Alert) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append(alert)
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self.deliver(self.queue.popleft())

    def stop_after_current(self) -> None:
        """End :meth:`run` once the alert it is sending (if any) is sent."""
        self._stopping = True
        self._wake.set()

    async def deliver(self, alert: Alert) -> bool:
        """Send one alert now; True if it was delivered."""
        ctx = NotifyContext(
            notifier=self.config.name, job=alert.job, plugin=alert.plugin, resources=self.resources
        )
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await self.instance.send(alert, ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed += 1
            if not self._failing:
                self._failing = True
                self._log.error(
                    "alert.failed",
                    job=alert.job,
                    alert=alert.event.value,
                    error=str(exc) or type(exc).__name__,
                    error_type=type(exc).__name__,
                )
            return False
        self.sent += 1
        if self._failing:
            self._failing = False
            self._log.info("alert.delivered_again", failed=self.failed)
        self._log.info("alert.sent", job=alert.job, alert=alert.event.value)
        if alert.event is not AlertEvent.TEST:
            episode = alert.since if alert.event is not AlertEvent.RECOVERED else None
            try:
                await self.ledger.record_alert(
                    alert.job, self.config.name, Sent(alert.event.value, episode, time.time())
                )
            except Exception as exc:
                self._log.warning("alert.ledger_failed", error=str(exc))
        return True


class AlertSink:
    """Turns down/recovered transitions into alerts for each job's notifiers."""

    def __init__(
        self,
        notifiers: Iterable[NotifierConfig],
        jobs: Iterable[Job],
        resources: Resources,
        ledger: AlertLedger | None = None,
        *,
        status_page: str | None = None,
    ) -> None:
        self.resources = resources
        #: The status page's address, for a link in each alert.
        self.status_page = status_page.rstrip("/") + "/" if status_page else None
        self.ledger: AlertLedger = ledger if ledger is not None else MemoryLedger()
        self.deliveries: dict[str, Delivery] = {}
        for config in notifiers:
            instance = config.notifier(config.options)
            assert isinstance(instance, Notifier)
            self.deliveries[config.name] = Delivery(config, instance, resources, self.ledger)
        self._notify: dict[str, tuple[str, ...]] = {}
        #: When each job's current (or last) incident began: a recovered
        #: alert says how long the job was down.
        self._incidents: dict[str, float] = {}
        self.update_jobs(jobs)
        self._sent: dict[tuple[str, str], Sent] = {}
        self._reconciled: set[str] = set()
        #: Checks whose alerts are decided elsewhere (a check with locations:,
        #: by the cluster's quorum: runner.cluster.quorum) and sent with
        #: :meth:`announce`; their results here are one location's.
        self.decided_elsewhere: frozenset[str] = frozenset()
        self._tasks: list[asyncio.Task[None]] = []
        self._log = get_logger()

    def update_jobs(self, jobs: Iterable[Job]) -> None:
        """Which notifiers each job names (again after a reload)."""
        self._notify = {job.name: job.notify for job in jobs if job.notify}
        self._incidents = {j: t for j, t in self._incidents.items() if j in self._notify}

    async def start(self, exit_stack: AsyncExitStack) -> None:
        exit_stack.push_async_callback(self.close)
        try:
            self._sent = await self.ledger.load_alerts()
        except Exception as exc:
            self._log.error("alert.ledger_failed", error=str(exc))
        self._tasks = [
            asyncio.create_task(delivery.run(), name=f"notifier:{name}")
            for name, delivery in self.deliveries.items()
        ]

    async def close(self) -> None:
        for delivery in self.deliveries.values():
            delivery.stop_after_current()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=CLOSE_GRACE)
        await cancel_and_wait(self._tasks)
        self._tasks = []

    async def adopt(self, jobs: Iterable[str]) -> Mapping[tuple[str, str], Sent]:
        """Jobs this daemon takes over from another cluster member: what the
        ledger says was sent for them (re-read: the other member wrote it), and
        their first result here is reconciled with it, as after a restart."""
        wanted = set(jobs)
        try:
            stored = await self.ledger.load_alerts()
        except Exception as exc:
            self._log.error("alert.ledger_failed", error=str(exc))
            return {}
        adopted = {key: sent for key, sent in stored.items() if key[0] in wanted}
        self._sent.update(adopted)
        self._reconciled -= wanted
        return adopted

    def stats(self) -> Mapping[str, Mapping[str, int]]:
        return {
            name: {"sent": d.sent, "failed": d.failed, "dropped": d.dropped}
            for name, d in self.deliveries.items()
        }

    # ---------------------------------------------------------------- results

    def submit(self, record: RunRecord, state: JobState) -> None:
        names = self._notify.get(record.job)
        if not names or record.job in self.decided_elsewhere:
            return
        if state.down_since is not None:
            self._incidents[record.job] = state.down_since
        if record.maintenance is not None:
            # In a maintenance window nothing is sent: the hub holds transitions,
            # and reminders and the after-restart reconciling wait for its end.
            return
        first = record.job not in self._reconciled
        self._reconciled.add(record.job)
        now = time.time()
        for name in names:
            delivery = self.deliveries.get(name)
            if delivery is None:
                continue
            sent = self._sent.get((record.job, name))
            event = self._event_for(state, delivery.config, sent, now, first)
            if event is None:
                continue
            if event is AlertEvent.RECOVERED:
                since, consecutive = state.since, state.consecutive_ok
                rule, results = state.thresholds.up, "successes"
                # The incident that ended: seen here, else (the daemon
                # restarted since) the one the ledger has this notifier told.
                down_since = self._incidents.get(record.job)
                if down_since is None and sent is not None and sent.event != "recovered":
                    down_since = sent.episode
            else:
                since, consecutive = state.down_since, state.consecutive_not_ok
                rule, results = state.thresholds.down, "failures"
                down_since = since
            self._tell(
                delivery,
                record,
                event,
                now,
                since=since,
                down_since=down_since,
                consecutive=consecutive,
                rule=None if rule.is_streak else rule.describe(results),
            )
        if not state.down:
            self._incidents.pop(record.job, None)

    def announce(
        self,
        record: RunRecord,
        event: AlertEvent,
        *,
        since: float | None,
        down_since: float | None,
        consecutive: int,
        rule: str | None = None,
        locations: str | None = None,
    ) -> None:
        """Tell the job's notifiers of a change decided elsewhere (a check
        with ``locations:``: the cluster member that made the change in the
        database tells, once). ``record``: the result that decided it."""
        now = time.time()
        for name in self._notify.get(record.job, ()):
            delivery = self.deliveries.get(name)
            if delivery is None:
                continue
            if event is AlertEvent.RECOVERED and not delivery.config.send_on_resolved:
                continue
            self._tell(
                delivery,
                record,
                event,
                now,
                since=since,
                down_since=down_since,
                consecutive=consecutive,
                rule=rule,
                locations=locations,
            )

    def _tell(
        self,
        delivery: Delivery,
        record: RunRecord,
        event: AlertEvent,
        now: float,
        *,
        since: float | None,
        down_since: float | None,
        consecutive: int,
        rule: str | None,
        locations: str | None = None,
    ) -> None:
        """Queue one alert for ``delivery``, and note it as sent to it."""
        recovered = event is AlertEvent.RECOVERED
        self._sent[(record.job, delivery.config.name)] = Sent(
            event.value, None if recovered else since, now
        )
        delivery.put(
            Alert(
                job=record.job,
                plugin=record.plugin,
                event=event,
                since=since,
                last=record,
                consecutive=consecutive,
                status_page=(
                    f"{self.status_page}#{quote(record.job)}" if self.status_page else None
                ),
                rule=rule,
                down_since=down_since,
                locations=locations,
            )
        )

    @staticmethod
    def _event_for(
        state: JobState, config: NotifierConfig, sent: Sent | None, now: float, first: bool
    ) -> AlertEvent | None:
        if state.transition == "down":
            return AlertEvent.DOWN
        if state.transition == "recovered":
            return AlertEvent.RECOVERED if config.send_on_resolved else None
        told_down = sent is not None and sent.event in ("down", "reminder")
        if state.down:
            if first and not (told_down and sent is not None and sent.episode == state.down_since):
                return AlertEvent.DOWN  # down before a restart, and never said
            if (
                config.repeat_every
                and sent is not None
                and now - sent.sent_at >= config.repeat_every
            ):
                return AlertEvent.REMINDER
            return None
        if first and told_down and config.send_on_resolved:
            return AlertEvent.RECOVERED  # recovered before a restart, and never said
        return None


async def send_test_alert(config: NotifierConfig) -> str | None:
    """Send a ``test`` alert through one notifier (``runner notify-test``).

    Returns None when it was delivered, else why not.
    """
    resources = Resources()
    try:
        instance = config.notifier(config.options)
        assert isinstance(instance, Notifier)
        alert = Alert(
            job="runner",
            plugin="",
            event=AlertEvent.TEST,
            since=None,
            last=None,
            consecutive=0,
        )
        ctx = NotifyContext(notifier=config.name, job="runner", plugin="", resources=resources)
        async with asyncio.timeout(SEND_TIMEOUT):
            await instance.send(alert, ctx)
    except Exception as exc:
        return str(exc) or type(exc).__name__
    finally:
        await resources.aclose()
    return None

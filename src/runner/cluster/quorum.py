"""A check run from several locations: its state and its alerts, by quorum.

A check with ``locations:`` runs once per slot in each location it lists
(runner.cluster.member gives each location's unit to one live member
there). Each location's member keeps that location's state in its hub, as
for any check: its streaks, and whether the job's down rule holds for the
results seen from there. After each run it stores that location's latest
result and state (``runner_cluster_locations``) and reads back every
location's, a row each; from them it decides the check's:

- **failing** when at least ``quorum`` locations' latest results are not
  ok, **ok** when fewer, **unknown** while no location reports;
- **down** when at least ``quorum`` locations are down by the job's rule
  (with the default rule, 3 results not ok in a row from there); it
  **recovers** when so few are down that even the unknown ones could not
  make a quorum with them.

A location with no live member is **unknown**: it counts for neither side.
Losing one never changes the check's state by itself, so it never pages.

Each member that sees a change tries to make it in
``runner_cluster_incidents`` with a conditional ``UPDATE``; the one that
succeeds sends the alert, so it goes out once per incident, naming the
failing locations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Set
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.cluster.store import Incident, LocationRow
from runner.log import get_logger
from runner.model import Health, Job, JobState, RunRecord
from runner.notifier import AlertEvent
from runner.plugin import Status
from runner.status import LocationStatus
from runner.tasks import cancel_and_wait

if TYPE_CHECKING:
    from runner.alerts import AlertSink
    from runner.cluster.member import ClusterMember

#: Results that come within this long are stored and decided in one
#: transaction: at 300 checks a second, one statement per result cost the
#: member 2.2x the CPU of a run and PostgreSQL 17x (bench/cluster.py, loc1).
BATCH_WINDOW = 0.1

__all__ = ["QuorumSink", "Verdict", "decide", "location_views", "shown", "summary"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """A check's state from its locations' latest results."""

    #: The locations counted (listed, or every known one for ``all``).
    listed: tuple[str, ...]
    quorum: int
    #: ok / failing by the latest results; unknown while none reports.
    health: Health
    #: Whether the check is down after this decision.
    down: bool
    #: ``down`` or ``recovered`` when this decision changes it, else None.
    transition: str | None
    #: Reporting locations whose latest result is not ok / is ok.
    failing: tuple[str, ...]
    ok: tuple[str, ...]
    #: Reporting locations that are down by the job's rule.
    down_at: tuple[str, ...]
    #: Listed locations with no live member, or no result yet.
    unknown: tuple[str, ...]


def listed(job: Job, known: Iterable[str]) -> tuple[str, ...]:
    """The locations a check runs from: those it lists, or for ``all`` every
    location a member of the cluster has."""
    if job.runs_everywhere:
        return tuple(sorted(set(known)))
    return job.locations or ()


def decide(
    job: Job,
    latest: Mapping[str, LocationRow],
    live: Set[str],
    known: Iterable[str],
    down: bool,
) -> Verdict:
    """The check's state from each location's latest row (``latest``), given
    the locations that have a live member (``live``) and whether the check
    was down before (``down``)."""
    places = listed(job, known)
    quorum = job.quorum_of(len(places))
    reporting = [p for p in places if p in live and p in latest]
    unknown = tuple(p for p in places if p not in reporting)
    failing = tuple(p for p in reporting if latest[p].status != Status.OK.value)
    ok = tuple(p for p in reporting if latest[p].status == Status.OK.value)
    down_at = tuple(p for p in reporting if latest[p].down)
    if not reporting:
        health = Health.UNKNOWN
    else:
        health = Health.FAILING if len(failing) >= quorum else Health.OK
    transition = None
    if not down and len(down_at) >= quorum:
        transition = "down"
    elif down and len(down_at) + len(unknown) < quorum:
        transition = "recovered"
    now_down = down if transition is None else transition == "down"
    return Verdict(places, quorum, health, now_down, transition, failing, ok, down_at, unknown)


def summary(verdict: Verdict, latest: Mapping[str, LocationRow]) -> str:
    """One line for people: ``down from eu-west, us-east: cannot connect; ok
    from ap-south``. Failing locations with the same message are named together."""
    parts: list[str] = []
    by_message: dict[str, list[str]] = {}
    for place in verdict.failing:
        row = latest[place]
        by_message.setdefault(row.message or row.status, []).append(place)
    for message, places in by_message.items():
        parts.append(f"{'down' if verdict.down else 'failing'} from {', '.join(places)}: {message}")
    if verdict.ok:
        parts.append(f"ok from {', '.join(verdict.ok)}")
    if verdict.unknown:
        parts.append(f"no result from {', '.join(verdict.unknown)}")
    return "; ".join(parts)


def location_views(
    verdict: Verdict, latest: Mapping[str, LocationRow]
) -> tuple[LocationStatus, ...]:
    """Each listed location's latest result, as the status rows show it."""
    views = []
    for place in verdict.listed:
        row = latest.get(place)
        if row is None or place in verdict.unknown:
            state = "unknown"
        elif row.down:
            state = "down"
        else:
            state = "ok" if row.status == Status.OK.value else "failing"
        views.append(
            LocationStatus(
                place,
                state,
                None if row is None else row.status,
                None if row is None else row.message,
                None if row is None else row.duration_ms,
                None if row is None else row.finished_at,
                None if row is None else row.member,
            )
        )
    return tuple(views)


def shown(
    jobs: Iterable[Job],
    states: Mapping[str, JobState],
    latest: Mapping[str, Mapping[str, LocationRow]],
    incidents: Mapping[str, Incident],
    live: Set[str],
    known: Iterable[str],
) -> tuple[dict[str, JobState], dict[str, tuple[LocationStatus, ...]]]:
    """The states of ``jobs`` (checks with ``locations:``) as the cluster has
    them: each one's state, down and since by quorum (runs and counts stay
    those of ``states``), and each location's latest result."""
    known = tuple(known)
    out: dict[str, JobState] = {}
    views: dict[str, tuple[LocationStatus, ...]] = {}
    for job in jobs:
        here = latest.get(job.name, {})
        incident = incidents.get(job.name, Incident(False, None))
        verdict = decide(job, here, live, known, incident.down)
        views[job.name] = location_views(verdict, here)
        rows = [here[p] for p in verdict.listed if p in here and p not in verdict.unknown]
        counted = verdict.failing if verdict.health is Health.FAILING else verdict.ok
        since = min((here[p].since or here[p].finished_at for p in counted), default=None)
        newest = max(rows, key=lambda r: r.finished_at, default=None)
        base = states.get(job.name) or JobState(job.name, job.plugin_name, job.kind)
        last = base.last
        if newest is not None and (last is None or last.finished_at < newest.finished_at):
            last = RunRecord(
                job.name,
                job.plugin_name,
                Status(newest.status),
                newest.message,
                {},
                newest.finished_at - newest.duration_ms / 1000,
                newest.finished_at,
                newest.duration_ms,
                member=newest.member,
                location=newest.location,
            )
        out[job.name] = JobState(
            job=job.name,
            plugin=job.plugin_name,
            kind=job.kind,
            state=verdict.health,
            since=since,
            last=last,
            counts=base.counts,
            skipped=base.skipped,
            down=incident.down,
            down_since=incident.down_since if incident.down else None,
            recent_codes=base.recent_codes,
            thresholds=base.thresholds,
        )
    return out, views


async def read_shown(
    url: str, cluster: str, jobs: list[Job], states: Mapping[str, JobState]
) -> tuple[dict[str, JobState], dict[str, tuple[LocationStatus, ...]]]:
    """:func:`shown` for ``runner status``, read from the cluster's database."""
    from runner.cluster.store import read_located

    now, members, latest, incidents = await read_located(
        url, cluster, [j.name for j in jobs], timeout=10.0
    )
    live = {m.location for m in members if m.location and m.live(now)}
    known = {m.location for m in members if m.location and m.left_at is None}
    return shown(jobs, states, latest, incidents, live, known)


def row_of(record: RunRecord, state: JobState) -> LocationRow:
    """What a location stores of its latest result and state."""
    assert record.location is not None and record.member is not None
    return LocationRow(
        location=record.location,
        member=record.member,
        status=record.status.value,
        message=record.message,
        finished_at=record.finished_at,
        duration_ms=record.duration_ms,
        since=state.since,
        down=state.down,
        down_since=state.down_since,
        consecutive_ok=state.consecutive_ok,
        consecutive_not_ok=state.consecutive_not_ok,
        recent_codes=state.recent_codes,
    )


class QuorumSink:
    """A result sink: this member's results of checks with ``locations:`` go
    to the cluster's database, and a change of the check's state found there
    becomes one alert.

    ``submit`` only keeps each check's newest result; one task writes those
    of :data:`BATCH_WINDOW` in one transaction and reads back the rows of
    those checks.
    """

    def __init__(
        self, member: ClusterMember, jobs: Iterable[Job], alerts: AlertSink | None
    ) -> None:
        self.member = member
        self.alerts = alerts
        self._located: dict[str, Job] = {}
        self._pending: dict[str, tuple[RunRecord, JobState]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._log = get_logger()
        self.update_jobs(jobs)

    def update_jobs(self, jobs: Iterable[Job]) -> None:
        self._located = {job.name: job for job in jobs if job.locations is not None}
        if self.alerts is not None:
            self.alerts.decided_elsewhere = frozenset(self._located)

    async def start(self, exit_stack: AsyncExitStack) -> None:
        self._task = asyncio.create_task(self._run(), name="cluster:quorum")
        exit_stack.push_async_callback(self.close)

    async def close(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            await cancel_and_wait([task])

    def submit(self, record: RunRecord, state: JobState) -> None:
        if record.job in self._located and record.location is not None:
            self._pending[record.job] = (record, state)
            self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(BATCH_WINDOW)
            self._wake.clear()
            pending, self._pending = self._pending, {}
            if self.member.stopping:
                continue  # its store is closing: the next owner reports
            try:
                await self._decide(pending)
            except Exception as exc:
                # The next result of these checks reports again; a state that
                # changed meanwhile is decided then.
                if not self._failing:
                    self._failing = True
                    self._log.error(
                        "cluster.quorum_failed",
                        error=str(exc) or type(exc).__name__,
                        error_type=type(exc).__name__,
                        hint="checks with locations: keep running; their state and alerts "
                        "wait until the database answers",
                    )
            else:
                if self._failing:
                    self._failing = False
                    self._log.info("cluster.quorum_back")

    async def _decide(self, pending: Mapping[str, tuple[RunRecord, JobState]]) -> None:
        store = self.member.store
        rows = {job: row_of(record, state) for job, (record, state) in pending.items()}
        latest, incidents = await store.report(rows)
        live, known = self.member.live_locations, self.member.known_locations
        for name, (record, _state) in pending.items():
            job = self._located.get(name)
            if job is None:  # removed by a reload meanwhile
                continue
            if record.maintenance is not None:
                # In a maintenance window nothing is decided, so nothing is sent
                # (as for any check); the first result after it decides.
                continue
            incident = incidents.get(name, Incident(False, None))
            here = latest.get(name, {})
            verdict = decide(job, here, live, known, incident.down)
            if verdict.transition is None:
                continue
            down = verdict.transition == "down"
            since = min(
                (here[p].down_since or here[p].finished_at for p in verdict.down_at),
                default=record.finished_at,
            )
            before = await store.claim(name, down, since if down else None)
            if before is None:
                continue  # another member saw it first and tells
            line = summary(verdict, here)
            self._log.warning(
                "cluster.quorum_down" if down else "cluster.quorum_recovered",
                job=name,
                locations=line,
                quorum=verdict.quorum,
            )
            if self.alerts is not None:
                counted = verdict.down_at if down else verdict.ok
                self.alerts.announce(
                    record,
                    AlertEvent.DOWN if down else AlertEvent.RECOVERED,
                    since=since if down else record.finished_at,
                    down_since=since if down else before.down_since,
                    consecutive=len(counted),
                    rule=f"{'down' if down else 'ok'} from {len(counted)} of "
                    f"{len(verdict.listed)} locations, quorum {verdict.quorum}",
                    locations=line,
                )

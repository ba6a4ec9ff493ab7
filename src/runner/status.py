"""The read side: what a person or a scraper is shown of the jobs, built once.

A status row (:class:`StatusRow`) is one check's state (``ok``, ``failing``,
``unknown``; whether it is ``down``; since when; its last result; its counts)
beside what its stored runs say (uptime over :data:`UPTIME_WINDOWS`, latency
percentiles over :data:`LATENCY_WINDOW`: :class:`RunStats`, which history
computes).
:func:`status_rows` builds them, from whichever states are the freshest: the
daemon's hub (``/api/status`` and the status page) or history's
(``runner status``, which asks no daemon). ``runner status`` prints them
(:mod:`runner.report`) or writes :meth:`StatusRow.to_json`, as ``/api/status``
does.

:class:`StatusView` is what the HTTP endpoint (:mod:`runner.web`) and the
metrics (:mod:`runner.metrics`) are given instead of the daemon: the jobs'
states, the status rows, loop lag, history's and the notifiers' counters.
The daemon provides one (``Daemon.view``); a test can give its own.

The words a person is shown for a state, the same on the status page and the
badges, are :func:`check_word` and :func:`service_word`; services have
:class:`ServiceRow` (``/api/services``).

This module imports only the ground floor (:mod:`runner.model`), so history,
the CLI, the endpoint and the daemon can all import it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from runner.model import Health, Job, JobState, Maintenance, Occurrence, RunRecord, format_time

__all__ = [
    "LATENCY_WINDOW",
    "NO_STATS",
    "PERCENTILES",
    "UPTIME_WINDOWS",
    "HistoryCounts",
    "LocationStatus",
    "RunStats",
    "ServiceRow",
    "StatusRow",
    "StatusView",
    "check_word",
    "maintenance_json",
    "service_rows",
    "service_word",
    "status_rows",
    "uptime_text",
]

#: Uptime is reported over these windows (seconds), by label.
UPTIME_WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
#: Latency percentiles are over this window (seconds), of the runs that were ok.
LATENCY_WINDOW = 86400
#: The latency percentiles reported, by label.
PERCENTILES = {"p50": 0.5, "p95": 0.95}


@dataclass(frozen=True, slots=True)
class RunStats:
    """What a job's stored runs say (history's :meth:`HistoryStore.stats`)."""

    #: Share of runs that were ok in each window of :data:`UPTIME_WINDOWS`; None without runs.
    uptime: Mapping[str, float | None]
    #: Each of :data:`PERCENTILES` of ``duration_ms`` of the ok runs in the
    #: last :data:`LATENCY_WINDOW`; None without any.
    latency_ms: Mapping[str, float | None]


def check_word(state: Health, *, down: bool = False, maintenance: bool = False) -> str:
    """The word the status page and the badge show for a check: ``maintenance``
    while a window covers it, ``down`` when its alert rule holds (``state`` is
    then ``failing``), ``failing`` when its last result was not ok but it is not
    (yet) down, ``up`` when it was ok, ``unknown`` before its first result."""
    if maintenance:
        return "maintenance"
    if state is Health.FAILING:
        return "down" if down else "failing"
    return "up" if state is Health.OK else "unknown"


def service_word(state: JobState) -> str:
    """The word shown for a service: ``up`` (ready), ``down`` (its start failed
    or it stopped; ``last_error`` says why), ``starting`` (neither yet)."""
    if state.ready:
        return "up"
    return "down" if state.state is Health.FAILING else "starting"


def uptime_text(value: float | None) -> str:
    """An uptime share as the page shows it: always two decimals, rounded down,
    so that only a share of exactly 1 reads ``100.00%`` (``99.996%`` is
    ``99.99%``); ``—`` without runs."""
    if value is None:
        return "—"
    # (The epsilon keeps 0.57, whose product is 5699.99..., at 57.00%.)
    return f"{math.floor(value * 10_000 + 1e-6) / 100:.2f}%"


#: The stats of a job without stored runs (or without history).
NO_STATS = RunStats(dict.fromkeys(UPTIME_WINDOWS), dict.fromkeys(PERCENTILES))


@dataclass(frozen=True, slots=True)
class LocationStatus:
    """One location's latest result of a check with ``locations:``."""

    location: str
    #: ``ok``, ``failing``, ``down`` (the job's down rule holds there), or
    #: ``unknown`` (no live member there, or no result yet).
    state: str
    status: str | None
    message: str | None
    latency_ms: float | None
    finished_at: float | None
    member: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "state": self.state,
            "status": self.status,
            "message": self.message,
            "latency_ms": _round(self.latency_ms, 3),
            "finished_at": format_time(self.finished_at) if self.finished_at else None,
            "member": self.member,
        }


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One check as ``runner status``, ``/api/status`` and the status page show it."""

    job: str
    plugin: str
    state: Health
    #: When the current streak (ok, or not ok) began; None before the first result.
    since: float | None
    last: RunRecord | None
    uptime: Mapping[str, float | None]
    latency_ms: Mapping[str, float | None]
    runs: int
    failures: int
    #: The maintenance window covering the job now, if any: its state is then
    #: shown as ``maintenance`` (``state`` keeps whether its last result was ok).
    maintenance: str | None = None
    #: Whether the job is down: its alert rule (``failure_threshold`` or
    #: ``down_when``) holds, so it was alerted on. ``state`` is then ``failing``;
    #: a job that failed once, below its threshold, is failing but not down.
    down: bool = False
    #: In a cluster: the member that made the last result (runner.cluster).
    member: str | None = None
    #: A check with ``locations:``: each location's latest result (its
    #: ``state``, ``down`` and ``since`` are then the check's, by quorum).
    locations: tuple[LocationStatus, ...] = ()

    @property
    def shown_state(self) -> str:
        """``maintenance`` while a window covers the job, else ``state``."""
        return "maintenance" if self.maintenance is not None else self.state.value

    @property
    def word(self) -> str:
        """What the status page and the badge say: :func:`check_word`."""
        return check_word(self.state, down=self.down, maintenance=self.maintenance is not None)

    def to_json(self) -> dict[str, Any]:
        """The object of ``runner status --json`` and ``/api/status``."""
        out: dict[str, Any] = {
            "job": self.job,
            "plugin": self.plugin,
            "state": self.shown_state,
            "down": self.down,
            "since": format_time(self.since) if self.since is not None else None,
            "last": self.last.to_json() if self.last is not None else None,
            "uptime": {k: _round(v, 6) for k, v in self.uptime.items()},
            "latency_ms": {k: _round(v, 3) for k, v in self.latency_ms.items()},
            "runs": self.runs,
            "failures": self.failures,
        }
        if self.maintenance is not None:
            out["maintenance"] = self.maintenance
        if self.member is not None:
            out["member"] = self.member
        if self.locations:
            out["locations"] = [place.to_json() for place in self.locations]
            out["locations_reporting"] = sum(p.state != "unknown" for p in self.locations)
        return out


def status_rows(
    checks: Iterable[Job],
    states: Mapping[str, JobState],
    stats: Mapping[str, RunStats],
    maintenance: Maintenance | None = None,
    now: float | None = None,
    locations: Mapping[str, tuple[LocationStatus, ...]] | None = None,
) -> list[StatusRow]:
    """One row per check, in the order of ``checks``.

    Args:
        checks: the checks of the config (services have no row).
        states: each job's state, by name: the hub's in the daemon, history's
            in ``runner status``. A check without one is ``unknown``.
        stats: what each job's stored runs say, by name; a check without any
            has None everywhere (:data:`NO_STATS`).
        maintenance: the config's windows; a check a window covers at ``now``
            is shown in ``maintenance``.
        locations: for checks with ``locations:``, each location's latest
            result (their ``states`` are then the check's, by quorum).
    """
    rows = []
    for job in checks:
        state = states.get(job.name)
        summary = stats.get(job.name, NO_STATS)
        window = None
        if maintenance and now is not None:
            window = maintenance.active(job.name, now)
        in_window = window.name if window is not None else None
        if state is None or state.kind != "check":  # (a service's, before a reload)
            rows.append(
                StatusRow(
                    job.name,
                    job.plugin_name,
                    Health.UNKNOWN,
                    since=None,
                    last=None,
                    uptime=summary.uptime,
                    latency_ms=summary.latency_ms,
                    runs=0,
                    failures=0,
                    maintenance=in_window,
                    locations=locations.get(job.name, ()) if locations else (),
                )
            )
            continue
        rows.append(
            StatusRow(
                job.name,
                job.plugin_name,
                state.state,
                since=state.since,
                last=state.last,
                uptime=summary.uptime,
                latency_ms=summary.latency_ms,
                runs=state.runs,
                failures=state.failures,
                maintenance=in_window,
                down=state.down,
                member=state.last.member if state.last is not None else None,
                locations=locations.get(job.name, ()) if locations else (),
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class ServiceRow:
    """One service as ``/api/services`` and the status page show it."""

    job: str
    plugin: str
    #: :func:`service_word`: ``up``, ``down`` or ``starting``.
    state: str
    #: When it last became ready or stopped being ready; None before either.
    since: float | None
    #: Why it is not up (its last start's or run's error), if it is not.
    error: str | None

    def to_json(self) -> dict[str, Any]:
        """The object of ``/api/services``."""
        return {
            "job": self.job,
            "plugin": self.plugin,
            "kind": "service",
            "state": self.state,
            "since": format_time(self.since) if self.since is not None else None,
            "error": self.error,
        }


def service_rows(states: Mapping[str, JobState]) -> list[ServiceRow]:
    """One row per service among ``states`` (the hub's, in its order)."""
    return [
        ServiceRow(
            s.job,
            s.plugin,
            service_word(s),
            s.since,
            None if s.ready else s.last_error,
        )
        for s in states.values()
        if s.kind == "service"
    ]


def maintenance_json(maintenance: Maintenance, now: float) -> dict[str, Any]:
    """The windows on at ``now`` and the next to start: ``/api/maintenance``."""
    upcoming: Occurrence | None = maintenance.next(now)
    return {
        "active": [o.to_json() for o in maintenance.current(now)],
        "next": upcoming.to_json() if upcoming is not None else None,
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# --------------------------------------------------------------------------- the view


@dataclass(frozen=True, slots=True)
class HistoryCounts:
    """History's writer, as ``/metrics`` reports it."""

    #: Results stored since start.
    written: int
    #: Results given up because the store could not take them.
    dropped: int
    #: Results waiting to be written.
    queued: int
    #: Age (seconds) of the oldest result waiting to be written; 0 with none.
    lag: float


@dataclass(frozen=True, slots=True)
class ClusterCounts:
    """This member of a cluster, as ``/metrics`` reports it."""

    #: Live members, this one included, as the last renewal saw them.
    members: int
    #: Checks this member runs.
    owned: int
    #: Whether the last renewal reached the database.
    store_up: bool


class StatusView(Protocol):
    """What the HTTP endpoint and the metrics show of a running daemon.

    Small on purpose: the endpoint and the metrics read through it, never the
    daemon's hub, loop monitor, history or alerts themselves.
    """

    def states(self) -> Mapping[str, JobState]:
        """Every tracked job's state now, by name (a snapshot: states are immutable
        and the mapping is the caller's)."""
        ...

    async def shown_states(self) -> Mapping[str, JobState]:
        """The states the page, ``/api/recent`` and the badges show: :meth:`states`,
        and in a cluster the other members' checks too, as they stored them."""
        ...

    async def status_rows(self) -> list[StatusRow]:
        """The rows of ``/api/status``: each check's live state with its stored stats."""
        ...

    async def runs(
        self, job: str, *, since: float | None, status: str | None, limit: int
    ) -> list[RunRecord] | None:
        """The stored runs of ``job``, newest first; None when history is off."""
        ...

    def loop_lag(self) -> float:
        """How long (seconds) the event loop has kept the blocked-loop probe waiting."""
        ...

    def maintenance(self) -> Maintenance:
        """The maintenance windows of the config the daemon runs now."""
        ...

    def history_counts(self) -> HistoryCounts | None:
        """History's writer counters; None when history is off."""
        ...

    def cluster_counts(self) -> ClusterCounts | None:
        """This member's view of its cluster; None outside a cluster."""
        ...

    def notifier_counts(self) -> Mapping[str, Mapping[str, int]] | None:
        """Per notifier, alerts ``sent`` and ``failed``; None without notifiers."""
        ...

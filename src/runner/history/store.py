"""What a history store does, in SQL that SQLite and PostgreSQL both run.

Tables (prefixed, since a PostgreSQL database may be shared):

``runner_jobs``
    one row per job name: its plugin and kind, and the hub's state after the
    last stored run (state, since, consecutive counts, counts by status).
    Restart reads it back, so "failing since 03:12" survives a restart.
``runner_runs``
    one row per finished run: status, message, the plugin's fields as JSON,
    ``started_at``/``finished_at`` (UTC, seconds since the epoch),
    ``duration_ms``, ``attempts``, ``maintenance`` (the name of the window
    the run started in, else NULL), ``member`` (the cluster member that made
    it, else NULL), ``location`` (where that member is, else NULL). Indexed
    by (job, finished_at), which is the order every query and the retention
    walk in.
``runner_hours``
    runs and ok runs per job and hour, for long uptime windows; runs in a
    maintenance window are not counted, as uptime leaves them out.

Times are stored as seconds since the epoch in both backends, so the same
statements serve both (``to_timestamp(finished_at)`` in PostgreSQL shows them
as dates). Each backend only supplies a connection, a batch writer and its
placeholder style: see :mod:`runner.history.sqlite` and
:mod:`runner.history.postgres`.
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from runner.model import STATUS_CODES, Health, JobState, RunRecord, Sent
from runner.plugin import Status
from runner.status import LATENCY_WINDOW, PERCENTILES, UPTIME_WINDOWS, RunStats

#: The schema this code writes. Each migration takes the schema one version up;
#: ``MIGRATIONS[0]`` creates version 1 from nothing, ``MIGRATIONS[1]`` takes 1 to 2, ...
#: Statements are formatted with the backend's ``serial``, ``bigserial`` and
#: ``hour`` (the hour of ``finished_at``, as an integer) before they run.
SCHEMA_VERSION = 6

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE IF NOT EXISTS runner_jobs (
            id {serial} PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            plugin TEXT NOT NULL,
            kind TEXT NOT NULL DEFAULT 'check',
            state TEXT NOT NULL DEFAULT 'unknown',
            since DOUBLE PRECISION,
            consecutive_ok BIGINT NOT NULL DEFAULT 0,
            consecutive_not_ok BIGINT NOT NULL DEFAULT 0,
            count_ok BIGINT NOT NULL DEFAULT 0,
            count_fail BIGINT NOT NULL DEFAULT 0,
            count_error BIGINT NOT NULL DEFAULT 0,
            count_timeout BIGINT NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE IF NOT EXISTS runner_runs (
            id {bigserial} PRIMARY KEY,
            job_id INTEGER NOT NULL,
            status TEXT NOT NULL,
            message TEXT,
            fields TEXT,
            started_at DOUBLE PRECISION NOT NULL,
            finished_at DOUBLE PRECISION NOT NULL,
            duration_ms DOUBLE PRECISION NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 1
        )""",
        "CREATE INDEX IF NOT EXISTS runner_runs_job_time ON runner_runs (job_id, finished_at)",
    ],
    # 2: alerting. A job's down state, and the last alert each notifier delivered.
    [
        "ALTER TABLE runner_jobs ADD COLUMN down INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runner_jobs ADD COLUMN down_since DOUBLE PRECISION",
        """CREATE TABLE IF NOT EXISTS runner_alerts (
            job TEXT NOT NULL,
            notifier TEXT NOT NULL,
            event TEXT NOT NULL,
            episode DOUBLE PRECISION,
            sent_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (job, notifier)
        )""",
    ],
    # 3: runs and ok runs per job and hour, so 7-day and 30-day uptime reads a few
    # hundred rows a job instead of every run (bench/README.md: 14.8 s -> 0.17 s
    # for 1,000 jobs and 10 million runs on SQLite). Filled from the runs there are.
    [
        """CREATE TABLE IF NOT EXISTS runner_hours (
            job_id INTEGER NOT NULL,
            hour BIGINT NOT NULL,
            runs BIGINT NOT NULL,
            ok BIGINT NOT NULL,
            PRIMARY KEY (job_id, hour)
        )""",
        "INSERT INTO runner_hours (job_id, hour, runs, ok) SELECT job_id, {hour}, COUNT(*), "
        "SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END) FROM runner_runs GROUP BY 1, 2",
    ],
    # 4: the maintenance window a run started in (its name; NULL outside any).
    # Such runs are not counted in uptime: not in the runs' windows, not in
    # runner_hours. Runs stored before have none.
    [
        "ALTER TABLE runner_runs ADD COLUMN maintenance TEXT",
    ],
    # 5: the cluster member that made a run (runner.cluster); NULL outside a
    # cluster and for runs stored before.
    [
        "ALTER TABLE runner_runs ADD COLUMN member TEXT",
    ],
    # 6: the location of that member (``--location``); NULL outside a cluster,
    # for a member without one, and for runs stored before.
    [
        "ALTER TABLE runner_runs ADD COLUMN location TEXT",
    ],
]

#: 1 for a run that was ok, in SQL over runner_runs.
OK_RUN = "CASE WHEN status = 'ok' THEN 1 ELSE 0 END"
RUN_COLUMNS = (
    "status, message, fields, started_at, finished_at, duration_ms, attempts, maintenance, "
    "member, location"
)
_STATUS_COUNTS = ("count_ok", "count_fail", "count_error", "count_timeout")

INSERT_RUN = (
    f"INSERT INTO runner_runs (job_id, {RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_JOB = (
    "INSERT INTO runner_jobs (name, plugin, kind) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING"
)
UPDATE_JOB_STATE = (
    "UPDATE runner_jobs SET plugin = ?, kind = ?, state = ?, since = ?, consecutive_ok = ?, "
    "consecutive_not_ok = ?, count_ok = ?, count_fail = ?, count_error = ?, count_timeout = ?, "
    "down = ?, down_since = ? WHERE id = ?"
)
UPSERT_HOURS = (
    "INSERT INTO runner_hours (job_id, hour, runs, ok) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (job_id, hour) DO UPDATE SET runs = runner_hours.runs + excluded.runs, "
    "ok = runner_hours.ok + excluded.ok"
)
UPSERT_ALERT = (
    "INSERT INTO runner_alerts (job, notifier, event, episode, sent_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (job, notifier) DO UPDATE SET event = excluded.event, "
    "episode = excluded.episode, sent_at = excluded.sent_at"
)


#: A status as stored, to its letter in JobState.recent_codes.
_CODE_OF_STATUS = {status.value: code for status, code in STATUS_CODES.items()}
#: Job names in one ``IN (...)`` of :meth:`HistoryStore.load_recent`.
_NAMES_PER_QUERY = 500


class HistoryError(Exception):
    """History cannot be opened or read; the message says why and what to do."""


class SchemaTooNewError(HistoryError):
    def __init__(self, where: str, found: int) -> None:
        super().__init__(
            f"history {where} has schema version {found}, newer than this runner "
            f"understands ({SCHEMA_VERSION}): it was written by a newer runner. Upgrade "
            f"runner, or point history.path / history.url somewhere else."
        )


#: One encoder for every run's fields: ``json.dumps`` with options builds a new one per call.
_encode_fields = json.JSONEncoder(default=str, separators=(",", ":")).encode


#: Stored with the plugin's fields (a name plugins may not use), not in a column of its own.
_ATTEMPT_ERRORS = "attempt_errors"


def _fields_json(record: RunRecord) -> str | None:
    if record.attempt_errors:
        return _encode_fields({**record.fields, _ATTEMPT_ERRORS: record.attempt_errors})
    return _encode_fields(record.fields) if record.fields else None


def record_row(job_id: int, record: RunRecord) -> tuple[Any, ...]:
    return (
        job_id,
        record.status.value,
        record.message,
        _fields_json(record),
        record.started_at,
        record.finished_at,
        record.duration_ms,
        record.attempts,
        record.maintenance,
        record.member,
        record.location,
    )


def run_rows(records: Iterable[RunRecord], ids: Mapping[str, int]) -> Iterator[tuple[Any, ...]]:
    """The ``runner_runs`` rows of ``records`` (job id first, then ``RUN_COLUMNS``).

    A generator on purpose: the driver consumes each row as it is made, so a
    batch of 10,000 never holds 10,000 row tuples at once. Held for the whole
    write, they would be promoted to the garbage collector's oldest generation,
    and every full collection of a big daemon (10,000 jobs: about 150 ms) would
    come sooner.
    """
    for record in records:
        yield record_row(ids[record.job], record)


def state_row(job_id: int, state: JobState) -> tuple[Any, ...]:
    counts = state.counts
    return (
        state.plugin,
        state.kind,
        state.state.value,
        state.since,
        state.consecutive_ok,
        state.consecutive_not_ok,
        counts.get("ok", 0),
        counts.get("fail", 0),
        counts.get("error", 0),
        counts.get("timeout", 0),
        int(state.down),
        state.down_since,
        job_id,
    )


def state_rows(states: Iterable[JobState], ids: Mapping[str, int]) -> Iterator[tuple[Any, ...]]:
    """The parameters of ``UPDATE_JOB_STATE`` for each of ``states``, one at a time."""
    for state in states:
        yield state_row(ids[state.job], state)


def hour_rows(records: Iterable[RunRecord], ids: Mapping[str, int]) -> list[tuple[int, ...]]:
    """``(job_id, hour, runs, ok)`` for ``runner_hours``: the records counted by job and
    hour, but for those in a maintenance window (uptime leaves them out)."""
    counts: dict[tuple[int, int], list[int]] = {}
    for record in records:
        if record.maintenance is not None:
            continue
        key = (ids[record.job], int(record.finished_at // 3600))
        count = counts.get(key)
        if count is None:
            count = counts[key] = [0, 0]
        count[0] += 1
        count[1] += record.status is Status.OK
    return [(job_id, hour, runs, ok) for (job_id, hour), (runs, ok) in counts.items()]


def record_from_row(job: str, plugin: str, row: Sequence[Any]) -> RunRecord:
    """A record from ``RUN_COLUMNS``."""
    (
        status,
        message,
        fields,
        started_at,
        finished_at,
        duration_ms,
        attempts,
        maintenance,
        member,
        location,
    ) = row
    decoded = json.loads(fields) if fields else {}
    attempt_errors = tuple(decoded.pop(_ATTEMPT_ERRORS, ()))
    return RunRecord(
        job=job,
        plugin=plugin,
        status=Status(status),
        message=message,
        fields=decoded,
        attempt_errors=attempt_errors,
        started_at=float(started_at),
        finished_at=float(finished_at),
        duration_ms=float(duration_ms),
        attempts=int(attempts),
        maintenance=maintenance,
        member=member,
        location=location,
    )


#: load_states reads named jobs with an IN list up to this many names (far
#: below SQLite's and PostgreSQL's limits on parameters), all jobs past it.
NAMED_STATES_MAX = 2000


class HistoryStore(ABC):
    """A place runs are stored. Methods are coroutines; a backend does its I/O
    off the event loop (a thread for SQLite, asyncpg for PostgreSQL)."""

    #: Where the history is, for messages (a path, or a URL without its password).
    where: str

    #: Placeholder style: ``?`` (SQLite) or ``$n`` (PostgreSQL).
    numbered_params = False

    #: The statuses of the last ``?`` runs of each job named in ``{names}``, by
    #: job, oldest first (:meth:`load_recent`). SQLite has no LATERAL join: the
    #: runs from each job's ``?``-th newest on, found by a correlated subquery.
    recent_runs_sql = (
        "SELECT j.name, r.status FROM runner_jobs j JOIN runner_runs r "
        "ON r.job_id = j.id AND r.finished_at >= COALESCE(("
        "SELECT finished_at FROM runner_runs WHERE job_id = j.id "
        "ORDER BY finished_at DESC LIMIT 1 OFFSET ? - 1), 0) "
        "WHERE j.name IN ({names}) ORDER BY j.id, r.finished_at, r.id"
    )

    def __init__(self) -> None:
        self._job_ids: dict[str, int] = {}

    # ---------------------------------------------------------------- backend

    @abstractmethod
    async def open(self, *, create: bool) -> None:
        """Connect. ``create``: make or migrate the schema (the daemon); else
        only check it (readers), raising :class:`HistoryError` if there is none.

        Raises:
            SchemaTooNewError: written by a newer runner.
            HistoryError: cannot be opened, with the reason.
        """

    @abstractmethod
    async def close(self) -> None:
        """Release the connection; idempotent."""

    @abstractmethod
    async def _fetch(self, sql: str, *params: Any) -> list[Sequence[Any]]:
        """Run one statement and return its rows."""

    @abstractmethod
    async def _execute(self, sql: str, *params: Any) -> int:
        """Run one statement in its own transaction; return the rows it changed."""

    @abstractmethod
    async def _write_batch(
        self,
        new_jobs: Sequence[tuple[str, str, str]],
        records: Sequence[RunRecord],
        states: Sequence[JobState],
    ) -> dict[str, int]:
        """In one transaction: insert ``new_jobs`` (name, plugin, kind) unless
        they exist, insert ``records`` (:func:`run_rows`), update the jobs'
        ``states`` (:func:`state_rows`). Return the ids of ``new_jobs``.

        Build the rows where the work is done (SQLite: its thread), not on the
        event loop before: at 10,000 runs a batch that is tens of milliseconds.
        """

    def sql(self, statement: str) -> str:
        """``statement`` with ``?`` placeholders in this backend's style."""
        if not self.numbered_params:
            return statement
        counter = iter(range(1, 10_000))
        return re.sub(r"\?", lambda _: f"${next(counter)}", statement)

    # ---------------------------------------------------------------- writing

    async def write(self, records: Sequence[RunRecord], states: Iterable[JobState]) -> None:
        """Store ``records`` and the jobs' latest ``states``, all in one transaction."""
        known = self._job_ids
        new_jobs: dict[str, tuple[str, str, str]] = {}
        for record in records:
            if record.job not in known:
                new_jobs[record.job] = (record.job, record.plugin, "check")
        state_list = list(states)
        for state in state_list:
            if state.job not in known:
                new_jobs[state.job] = (state.job, state.plugin, state.kind)
        ids = await self._write_batch(list(new_jobs.values()), records, state_list)
        self._job_ids.update(ids)

    async def prune(
        self,
        *,
        before: float,
        keep_runs: int | None,
        jobs: Iterable[str] | None = None,
        chunk: int = 2000,
        ids: Mapping[str, int] | None = None,
    ) -> int:
        """Delete runs older than ``before`` and past the newest ``keep_runs`` of each
        job, ``chunk`` rows per transaction so the writer is never held long.
        Returns how many were deleted. ``ids``: the job ids, if the caller has
        them already (a pass over every job reads them once, not once a job)."""
        if ids is None:
            ids = await self.job_ids()
        names = list(ids) if jobs is None else [j for j in jobs if j in ids]
        deleted = 0
        for name in names:
            job_id = ids[name]
            cut = before
            if keep_runs is not None:
                rows = await self._fetch(
                    self.sql(
                        "SELECT finished_at FROM runner_runs WHERE job_id = ? "
                        "ORDER BY finished_at DESC LIMIT 1 OFFSET ?"
                    ),
                    job_id,
                    keep_runs - 1,
                )
                if rows:  # the oldest run to keep; delete what finished before it
                    cut = max(cut, float(rows[0][0]))
            while True:
                count = await self._execute(
                    self.sql(
                        "DELETE FROM runner_runs WHERE id IN (SELECT id FROM runner_runs "
                        "WHERE job_id = ? AND finished_at < ? ORDER BY finished_at LIMIT ?)"
                    ),
                    job_id,
                    cut,
                    chunk,
                )
                deleted += count
                if count < chunk:
                    break
        return deleted

    async def prune_hours(self, *, before: float) -> int:
        """Delete the hourly counts of hours that ended before ``before``."""
        return await self._execute(
            self.sql("DELETE FROM runner_hours WHERE hour < ?"), int(before // 3600)
        )

    # ---------------------------------------------------------------- reading

    async def job_ids(self) -> dict[str, int]:
        rows = await self._fetch("SELECT name, id FROM runner_jobs")
        self._job_ids = {str(name): int(job_id) for name, job_id in rows}
        return dict(self._job_ids)

    async def load_states(self, jobs: Iterable[str] | None = None) -> list[JobState]:
        """The stored state of each job (all, or those named), with its last run."""
        wanted = None if jobs is None else set(jobs)
        sql = (
            "SELECT j.id, j.name, j.plugin, j.kind, j.state, j.since, j.consecutive_ok, "
            "j.consecutive_not_ok, j.count_ok, j.count_fail, j.count_error, j.count_timeout, "
            "j.down, j.down_since, "
            + ", ".join(f"r.{c}" for c in RUN_COLUMNS.split(", "))
            + " FROM runner_jobs j LEFT JOIN runner_runs r ON r.id = ("
            "SELECT id FROM runner_runs WHERE job_id = j.id ORDER BY finished_at DESC LIMIT 1)"
        )
        params: list[str] = []
        if wanted is not None and len(wanted) <= NAMED_STATES_MAX:
            # A few jobs (a cluster member taking some over, the page reading
            # the others'): only theirs are read, not every job's last run.
            params = sorted(wanted)
            sql += (
                f" WHERE j.name IN ({', '.join('?' * len(params))})" if params else " WHERE 1 = 0"
            )
        rows = await self._fetch(self.sql(sql), *params)
        states = []
        for row in rows:
            job_id, name, plugin, kind, state, since, c_ok, c_not_ok = row[:8]
            self._job_ids[name] = int(job_id)
            if wanted is not None and name not in wanted:
                continue
            counts = {
                status: int(n)
                for status, n in zip(("ok", "fail", "error", "timeout"), row[8:12], strict=True)
                if n
            }
            down, down_since = bool(row[12]), row[13]
            last = record_from_row(name, plugin, row[14:]) if row[14] is not None else None
            states.append(
                JobState(
                    job=name,
                    plugin=plugin,
                    kind=kind,
                    state=Health(state),
                    since=None if since is None else float(since),
                    consecutive_ok=int(c_ok),
                    consecutive_not_ok=int(c_not_ok),
                    last=last,
                    counts=counts,
                    down=down,
                    down_since=None if down_since is None else float(down_since),
                )
            )
        return states

    async def load_recent(self, jobs: Iterable[str], count: int) -> dict[str, str]:
        """The statuses of the last ``count`` runs of each of ``jobs``, oldest
        first, one letter each (:attr:`JobState.recent_codes
        <runner.model.JobState.recent_codes>`); a job with no runs is left out.

        One statement per 500 jobs (:attr:`recent_runs_sql`), which seeks each
        job's newest runs in the (job, finished_at) index: the cost grows with
        jobs times ``count``, not with the size of the history (bench/README.md,
        issue 20: 1,000 jobs of 1,000 runs each, 5 and 100 runs each: SQLite
        8-21 and 125-203 ms, PostgreSQL 18-134 and 303-699 ms; a
        ``ROW_NUMBER()`` over every run, which grows with the history, took
        2.9-8.7 s and 0.9-2.9 s).
        """
        names = list(dict.fromkeys(jobs))
        codes: dict[str, list[str]] = {}
        for start in range(0, len(names), _NAMES_PER_QUERY):
            chunk = names[start : start + _NAMES_PER_QUERY]
            marks = ", ".join("?" for _ in chunk)
            rows = await self._fetch(
                self.sql(self.recent_runs_sql.format(names=marks)), count, *chunk
            )
            for name, status in rows:
                codes.setdefault(str(name), []).append(_CODE_OF_STATUS[status])
        # Runs that finished at the same instant as the count-th newest are all
        # in SQLite's range: keep the last ``count``.
        return {name: "".join(letters[-count:]) for name, letters in codes.items()}

    # ---------------------------------------------------------------- alerts

    async def load_alerts(self) -> dict[tuple[str, str], Sent]:
        """The last alert each notifier delivered for each job (the alert ledger)."""
        rows = await self._fetch("SELECT job, notifier, event, episode, sent_at FROM runner_alerts")
        return {
            (str(job), str(notifier)): Sent(
                str(event), None if episode is None else float(episode), float(sent_at)
            )
            for job, notifier, event, episode, sent_at in rows
        }

    async def record_alert(self, job: str, notifier: str, sent: Sent) -> None:
        await self._execute(
            self.sql(UPSERT_ALERT), job, notifier, sent.event, sent.episode, sent.sent_at
        )

    async def stats(self, jobs: Sequence[str], now: float) -> dict[str, RunStats]:
        """Uptime over :data:`~runner.status.UPTIME_WINDOWS` and latency percentiles
        of each of ``jobs`` that history knows, as of ``now``. The jobs' states
        are :meth:`load_states`'; :func:`runner.status.status_rows` puts the two
        together."""
        known = self._job_ids
        if any(name not in known for name in jobs):
            known = await self.job_ids()  # written since, by another process
        ids = {name: known[name] for name in jobs if name in known}
        if not ids:
            return {}
        by_id = {job_id: name for name, job_id in ids.items()}
        marks = ", ".join("?" for _ in ids)
        windows = list(UPTIME_WINDOWS.items())
        # Windows of a day or less count the runs themselves (a day of rows is
        # cheap to read through the index); longer ones count whole hours of
        # runner_hours, the hour the window starts in included.
        exact = [(label, s) for label, s in windows if s <= 86400]
        hourly = [(label, s) for label, s in windows if s > 86400]
        counts: dict[str, dict[str, tuple[int, int]]] = {}

        def sums(condition: str, ok: str, total: str, count: int) -> str:
            return ", ".join(
                f"SUM(CASE WHEN {condition} THEN {total} ELSE 0 END), "
                f"SUM(CASE WHEN {condition} THEN {ok} ELSE 0 END)"
                for _ in range(count)
            )

        exact_sql = (
            f"SELECT job_id, {sums('finished_at >= ?', OK_RUN, '1', len(exact))} "
            f"FROM runner_runs WHERE finished_at >= ? AND job_id IN ({marks}) "
            # Runs in a maintenance window do not count (as in runner_hours).
            "AND maintenance IS NULL GROUP BY job_id"
        )
        starts = [now - seconds for _, seconds in exact]
        hours = [int((now - seconds) // 3600) for _, seconds in hourly]
        hourly_sql = (
            f"SELECT job_id, {sums('hour >= ?', 'ok', 'runs', len(hourly))} "
            f"FROM runner_hours WHERE hour >= ? AND job_id IN ({marks}) GROUP BY job_id"
        )
        for sql, labels, bounds in (
            (exact_sql, [label for label, _ in exact], starts),
            (hourly_sql, [label for label, _ in hourly], hours),
        ):
            params: list[Any] = [x for bound in bounds for x in (bound, bound)]
            for row in await self._fetch(self.sql(sql), *params, min(bounds), *ids.values()):
                values = [int(v or 0) for v in row[1:]]
                by_window = counts.setdefault(by_id[int(row[0])], {})
                for i, label in enumerate(labels):
                    by_window[label] = (values[2 * i], values[2 * i + 1])
        uptime: dict[str, dict[str, float | None]] = {}
        for name, by_window in counts.items():
            uptime[name] = {}
            for label in UPTIME_WINDOWS:
                runs, ok = by_window.get(label, (0, 0))
                uptime[name][label] = ok / runs if runs else None
        # Nearest-rank percentiles: the smallest duration whose rank reaches p * n.
        latency_sql = (
            "SELECT job_id, "
            + ", ".join(
                f"MIN(CASE WHEN rn >= {p} * n THEN duration_ms END)" for p in PERCENTILES.values()
            )
            + " FROM ("
            "SELECT job_id, duration_ms, "
            "ROW_NUMBER() OVER (PARTITION BY job_id ORDER BY duration_ms) AS rn, "
            "COUNT(*) OVER (PARTITION BY job_id) AS n FROM runner_runs "
            f"WHERE finished_at >= ? AND status = 'ok' AND job_id IN ({marks})) AS ranked "
            "GROUP BY job_id"
        )
        latency: dict[str, dict[str, float | None]] = {}
        for row in await self._fetch(self.sql(latency_sql), now - LATENCY_WINDOW, *ids.values()):
            latency[by_id[int(row[0])]] = {
                label: _num(value) for label, value in zip(PERCENTILES, row[1:], strict=True)
            }
        empty_uptime: dict[str, float | None] = dict.fromkeys(UPTIME_WINDOWS)
        empty_latency: dict[str, float | None] = dict.fromkeys(PERCENTILES)
        return {
            name: RunStats(uptime.get(name, empty_uptime), latency.get(name, empty_latency))
            for name in ids
        }

    async def runs(
        self,
        job: str,
        *,
        since: float | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """The runs of ``job``, newest first."""
        rows = await self._fetch(self.sql("SELECT id, plugin FROM runner_jobs WHERE name = ?"), job)
        if not rows:
            return []
        job_id, plugin = int(rows[0][0]), str(rows[0][1])
        where, params = "job_id = ?", list[Any]([job_id])
        if since is not None:
            where += " AND finished_at >= ?"
            params.append(since)
        if status is not None:
            where += " AND status = ?"
            params.append(status)
        rows = await self._fetch(
            self.sql(
                f"SELECT {RUN_COLUMNS} FROM runner_runs WHERE {where} "
                "ORDER BY finished_at DESC LIMIT ?"
            ),
            *params,
            limit,
        )
        return [record_from_row(job, plugin, row) for row in rows]

    async def count_runs(self) -> int:
        rows = await self._fetch("SELECT COUNT(*) FROM runner_runs")
        return int(rows[0][0])


def _num(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number

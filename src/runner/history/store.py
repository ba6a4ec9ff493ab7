"""What a history store does, in SQL that SQLite and PostgreSQL both run.

Tables (prefixed, since a PostgreSQL database may be shared):

``runner_jobs``
    one row per job name: its plugin and kind, and the hub's state after the
    last stored run (state, since, consecutive counts, counts by status).
    Restart reads it back, so "failing since 03:12" survives a restart.
``runner_runs_new``
    the newest runs, as each batch wrote them, in the order they came (no
    index but the row id): appending a batch of 10,000 runs dirties the few
    pages at the table's end, whatever the number of jobs. Every
    :data:`COMPACT_EVERY` seconds of runs they are *compacted*: moved into
    ``runner_runs_kept`` and counted into the three tables below, a range of
    jobs a transaction (about :data:`COMPACT_MAX_ROWS` runs).
``runner_runs_kept``
    the runs kept as they were, indexed by (job, finished_at): every run that
    was not ok and every run that changed the job's state (``notable``) for
    ``keep``; besides, each job's last :data:`RAW_RUNS` runs whatever they
    were. Moved a minute of runs at a time, a job's rows land on one index
    page per compaction, not one per batch (bench/README.md, issue 23).
``runner_runs``
    a view of both: every stored run with its columns (``status``,
    ``message``, ``fields`` as JSON, ``started_at``/``finished_at`` in UTC
    seconds since the epoch, ``duration_ms``, ``attempts``, ``maintenance``,
    ``member``, ...: :data:`RUN_COLUMNS`).
``runner_minutes``, ``runner_hours``
    runs and ok runs per job and minute (kept a day, for 1 h and 24 h uptime)
    and per job and hour (kept ``keep``, for 7 d and 30 d): exact counts of
    every run, not only of the kept ones; runs in a maintenance window are
    not counted, as uptime leaves them out.
``runner_latency``
    the ok runs' ``duration_ms`` per job and hour, as a log-bucketed sketch
    (:func:`latency_bucket`: buckets ``LATENCY_ACCURACY`` wide, so a
    percentile read from it is within 1 % of the run's own value).

Readers add the runs not yet compacted (at most a minute of them) to what
the counts say, so ``runner status`` is exact to the last batch written.

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
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import attrgetter
from typing import Any

from runner.model import STATUS_CODES, Health, JobState, RunRecord, Sent
from runner.plugin import Status
from runner.status import LATENCY_WINDOW, PERCENTILES, UPTIME_WINDOWS, RunStats

#: The columns of a stored run besides its job, in the order rows carry them,
#: with their SQL types. ``status`` and ``fields`` come first (stored as the
#: status's value and as JSON); every other one is the :class:`RunRecord`
#: attribute of its name. A new run column is one line here (and a migration
#: adding it to ``runner_runs_kept`` and ``runner_runs_new`` and recreating
#: the ``runner_runs`` view).
RUN_COLUMN_TYPES = {
    "status": "TEXT NOT NULL",
    "fields": "TEXT",
    "message": "TEXT",
    "started_at": "DOUBLE PRECISION NOT NULL",
    "finished_at": "DOUBLE PRECISION NOT NULL",
    "duration_ms": "DOUBLE PRECISION NOT NULL",
    "attempts": "INTEGER NOT NULL DEFAULT 1",
    "maintenance": "TEXT",
    "member": "TEXT",
    "location": "TEXT",
}
RUN_COLUMNS = ", ".join(RUN_COLUMN_TYPES)
#: The run columns as schema 7 made its tables and view: a migration runs
#: with the columns of its own version, not with those of later ones.
_COLUMNS_AT_7 = (
    "status",
    "fields",
    "message",
    "started_at",
    "finished_at",
    "duration_ms",
    "attempts",
    "maintenance",
    "member",
    "location",
)

#: Each job's last this many runs are kept as they were, whatever they were.
RAW_RUNS = 1000
#: The newest runs are compacted once they span this many seconds (or at a
#: writer's open and close)...
COMPACT_EVERY = 60.0
#: ... in steps of about this many runs: the jobs split in ranges of ids, a range
#: a transaction, one step with each following batch. Bounds how long a batch
#: waits behind a compaction (bench/history.py part 5).
COMPACT_MAX_ROWS = 150_000
#: Minute counts are kept this long (the longest window read from them, and a
#: minute for the one it starts in).
MINUTES_KEPT = 86400.0 + 60.0
#: Relative accuracy of the latency sketch: a bucket spans (g^(i-1), g^i] with
#: g = (1 + a) / (1 - a), and its value, 2 g^i / (g + 1), is within ``a`` of
#: any duration in it (as DDSketch's are).
LATENCY_ACCURACY = 0.01
_GAMMA = (1 + LATENCY_ACCURACY) / (1 - LATENCY_ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
#: Durations below this (ms) share the lowest bucket.
LATENCY_FLOOR_MS = 0.001
_LOWEST_BUCKET = math.ceil(math.log(LATENCY_FLOOR_MS) / _LOG_GAMMA)


def latency_bucket(duration_ms: float) -> int:
    """The sketch bucket of a duration."""
    if duration_ms <= LATENCY_FLOOR_MS:
        return _LOWEST_BUCKET
    return math.ceil(math.log(duration_ms) / _LOG_GAMMA)


def bucket_value(bucket: int) -> float:
    """What a bucket reads as: within :data:`LATENCY_ACCURACY` of any duration in it."""
    return 2 * _GAMMA**bucket / (_GAMMA + 1)


def _kept_runs_ddl(columns: tuple[str, ...]) -> str:
    return ", ".join(f"{name} {RUN_COLUMN_TYPES[name]}" for name in columns)


#: The schema this code writes. Each migration takes the schema one version up;
#: ``MIGRATIONS[0]`` creates version 1 from nothing, ``MIGRATIONS[1]`` takes 1 to 2, ...
#: Statements are formatted with the backend's ``serial``, ``bigserial``, ``hour``
#: and ``minute`` (of ``finished_at``, as integers), ``bucket`` (of
#: ``duration_ms``: :func:`latency_bucket` in SQL), ``without_rowid`` and
#: ``recent`` (seconds since the epoch: a day and an hour ago) before they run.
SCHEMA_VERSION = 7

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
    # 7: what users ask about, at the cost of a counter (issue 23). The runs
    # there were stay, as they were, in runner_runs_kept (all notable: none is
    # thinned to the last RAW_RUNS); new runs are appended to runner_runs_new
    # and compacted; runner_runs becomes a view of both. The minute counts and
    # the latency sketch are filled from the last day's runs.
    [
        "ALTER TABLE runner_runs ADD COLUMN notable INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE runner_runs RENAME TO runner_runs_kept",
        "CREATE TABLE runner_runs_new (id {bigserial} PRIMARY KEY, job_id INTEGER NOT NULL, "
        + _kept_runs_ddl(_COLUMNS_AT_7)
        + ", notable INTEGER NOT NULL, bucket INTEGER NOT NULL)",
        f"CREATE VIEW runner_runs AS SELECT job_id, {', '.join(_COLUMNS_AT_7)}, notable "
        f"FROM runner_runs_kept UNION ALL SELECT job_id, {', '.join(_COLUMNS_AT_7)}, notable "
        "FROM runner_runs_new",
        """CREATE TABLE runner_minutes (
            job_id INTEGER NOT NULL,
            minute BIGINT NOT NULL,
            runs BIGINT NOT NULL,
            ok BIGINT NOT NULL,
            PRIMARY KEY (job_id, minute)
        ){without_rowid}""",
        """CREATE TABLE runner_latency (
            job_id INTEGER NOT NULL,
            hour BIGINT NOT NULL,
            bucket INTEGER NOT NULL,
            runs BIGINT NOT NULL,
            PRIMARY KEY (job_id, hour, bucket)
        ){without_rowid}""",
        "INSERT INTO runner_minutes (job_id, minute, runs, ok) SELECT job_id, {minute}, COUNT(*), "
        "SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END) FROM runner_runs_kept "
        "WHERE finished_at >= {recent} AND maintenance IS NULL GROUP BY 1, 2",
        "INSERT INTO runner_latency (job_id, hour, bucket, runs) SELECT job_id, {hour}, {bucket}, "
        "COUNT(*) FROM runner_runs_kept WHERE finished_at >= {recent} AND status = 'ok' "
        "GROUP BY 1, 2, 3",
    ],
]

#: 1 for a run that was ok, in SQL over a table of runs.
OK_RUN = "CASE WHEN status = 'ok' THEN 1 ELSE 0 END"
_STATUS_COUNTS = ("count_ok", "count_fail", "count_error", "count_timeout")


def _marks(count: int) -> str:
    return ", ".join("?" * count)


#: A run as a batch writes it (:func:`new_run_rows`): job id, ``RUN_COLUMNS``,
#: notable, latency bucket.
INSERT_NEW_RUN = (
    f"INSERT INTO runner_runs_new (job_id, {RUN_COLUMNS}, notable, bucket) "
    f"VALUES ({_marks(len(RUN_COLUMN_TYPES) + 3)})"
)
#: A run kept as it was (``runner copy-history``): job id, ``RUN_COLUMNS``, notable.
INSERT_KEPT_RUN = (
    f"INSERT INTO runner_runs_kept (job_id, {RUN_COLUMNS}, notable) "
    f"VALUES ({_marks(len(RUN_COLUMN_TYPES) + 2)})"
)
INSERT_JOB = (
    "INSERT INTO runner_jobs (name, plugin, kind) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING"
)
UPDATE_JOB_STATE = (
    "UPDATE runner_jobs SET plugin = ?, kind = ?, state = ?, since = ?, consecutive_ok = ?, "
    "consecutive_not_ok = ?, count_ok = ?, count_fail = ?, count_error = ?, count_timeout = ?, "
    "down = ?, down_since = ? WHERE id = ?"
)
UPSERT_ALERT = (
    "INSERT INTO runner_alerts (job, notifier, event, episode, sent_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (job, notifier) DO UPDATE SET event = excluded.event, "
    "episode = excluded.episode, sent_at = excluded.sent_at"
)
#: The counts, added to (a compaction, a copy).
ADD_MINUTES = (
    "INSERT INTO runner_minutes (job_id, minute, runs, ok) {rows} "
    "ON CONFLICT (job_id, minute) DO UPDATE SET runs = runner_minutes.runs + excluded.runs, "
    "ok = runner_minutes.ok + excluded.ok"
)
ADD_HOURS = (
    "INSERT INTO runner_hours (job_id, hour, runs, ok) {rows} "
    "ON CONFLICT (job_id, hour) DO UPDATE SET runs = runner_hours.runs + excluded.runs, "
    "ok = runner_hours.ok + excluded.ok"
)
ADD_LATENCY = (
    "INSERT INTO runner_latency (job_id, hour, bucket, runs) {rows} "
    "ON CONFLICT (job_id, hour, bucket) DO UPDATE SET runs = runner_latency.runs + excluded.runs"
)
#: The tables of counts and their columns, as ``runner copy-history`` moves them.
COUNT_TABLES = {
    "runner_minutes": ("job_id, minute, runs, ok", ADD_MINUTES),
    "runner_hours": ("job_id, hour, runs, ok", ADD_HOURS),
    "runner_latency": ("job_id, hour, bucket, runs", ADD_LATENCY),
}


def compaction_statements(minute: str, hour: str) -> list[str]:
    """What a step of a compaction runs, in one transaction, each with three
    parameters: the highest row id of ``runner_runs_new`` the compaction takes,
    and the range of job ids of this step (from, to exclusive). The runs moved
    (in job order, so each job's rows go to one place of the index), counted
    by minute, by hour and into the latency sketch, and deleted."""
    new = "FROM runner_runs_new WHERE id <= ? AND job_id >= ? AND job_id < ?"
    return [
        f"INSERT INTO runner_runs_kept (job_id, {RUN_COLUMNS}, notable) "
        f"SELECT job_id, {RUN_COLUMNS}, notable {new} ORDER BY job_id, id",
        ADD_MINUTES.format(
            rows=f"SELECT job_id, {minute}, COUNT(*), SUM({OK_RUN}) {new} "
            "AND maintenance IS NULL GROUP BY 1, 2"
        ),
        ADD_HOURS.format(
            rows=f"SELECT job_id, {hour}, COUNT(*), SUM({OK_RUN}) {new} "
            "AND maintenance IS NULL GROUP BY 1, 2"
        ),
        ADD_LATENCY.format(
            rows=f"SELECT job_id, {hour}, bucket, COUNT(*) {new} AND status = 'ok' GROUP BY 1, 2, 3"
        ),
        f"DELETE {new}",
    ]


#: Past every job id (ids are 32-bit in PostgreSQL).
_NO_JOB_ID = 2**31 - 1

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


class SchemaTooOldError(HistoryError):
    def __init__(self, where: str, found: int) -> None:
        super().__init__(
            f"history {where} has schema version {found}, older than this runner reads "
            f"({SCHEMA_VERSION}): the daemon writing it has not been restarted since the "
            "upgrade. Restart it (it migrates the history at start), then read again."
        )


#: One encoder for every run's fields: ``json.dumps`` with options builds a new one per call.
_encode_fields = json.JSONEncoder(default=str, separators=(",", ":")).encode


#: Stored with the plugin's fields (a name plugins may not use), not in a column of its own.
_ATTEMPT_ERRORS = "attempt_errors"


def _fields_json(record: RunRecord) -> str | None:
    if record.attempt_errors:
        return _encode_fields({**record.fields, _ATTEMPT_ERRORS: record.attempt_errors})
    return _encode_fields(record.fields) if record.fields else None


#: The run columns after ``status`` and ``fields``: the record's attributes of their names.
_PLAIN_COLUMNS = tuple(RUN_COLUMN_TYPES)[2:]
_plain_values = attrgetter(*_PLAIN_COLUMNS)


def record_row(job_id: int, record: RunRecord) -> tuple[Any, ...]:
    """Job id, then ``RUN_COLUMNS``."""
    return (job_id, record.status.value, _fields_json(record), *_plain_values(record))


def new_run_rows(
    records: Iterable[RunRecord],
    ids: Mapping[str, int],
    last_ok: dict[int, bool],
    marked: frozenset[int] = frozenset(),
) -> Iterator[tuple[Any, ...]]:
    """The ``runner_runs_new`` rows of ``records`` (:data:`INSERT_NEW_RUN`).

    ``last_ok``: whether each job's previous run was ok, updated as the rows
    are made: a run is notable (kept for ``keep``) when it was not ok, when
    it is the first ok run after one that was not (or of a job not seen yet),
    or when its ``id()`` is in ``marked`` (the run its job went down or
    recovered with).

    A generator on purpose: the driver consumes each row as it is made, so a
    batch of 10,000 never holds 10,000 row tuples at once. Held for the whole
    write, they would be promoted to the garbage collector's oldest generation,
    and every full collection of a big daemon (10,000 jobs: about 150 ms) would
    come sooner.
    """
    ok_status = Status.OK
    for record in records:
        job_id = ids[record.job]
        ok = record.status is ok_status
        notable = (
            not ok or not last_ok.get(job_id, False) or (bool(marked) and id(record) in marked)
        )
        last_ok[job_id] = ok
        yield (*record_row(job_id, record), int(notable), latency_bucket(record.duration_ms))


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


#: Numbers as the record holds them, whatever the driver returned.
_AS_NUMBER = {"started_at": float, "finished_at": float, "duration_ms": float, "attempts": int}


def record_from_row(job: str, plugin: str, row: Sequence[Any]) -> RunRecord:
    """A record from ``RUN_COLUMNS`` (any columns after them are ignored)."""
    status, fields = row[0], row[1]
    plain: dict[str, Any] = dict(zip(_PLAIN_COLUMNS, row[2 : len(RUN_COLUMN_TYPES)], strict=True))
    for name, number in _AS_NUMBER.items():
        plain[name] = number(plain[name])
    decoded = json.loads(fields) if fields else {}
    attempt_errors = tuple(decoded.pop(_ATTEMPT_ERRORS, ()))
    return RunRecord(
        job=job,
        plugin=plugin,
        status=Status(status),
        fields=decoded,
        attempt_errors=attempt_errors,
        **plain,
    )


def percentile_of_buckets(counts: Sequence[tuple[int, int]], share: float) -> float:
    """Nearest rank over a sketch: the value of the lowest bucket whose cumulative
    count reaches ``share`` of all (``counts``: (bucket, runs), by bucket)."""
    total = sum(n for _, n in counts)
    seen = 0
    for bucket, n in counts:
        seen += n
        if seen >= share * total:
            return bucket_value(bucket)
    return bucket_value(counts[-1][0])


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

    #: The statuses of the last ``?`` kept runs of each job named in ``{names}``,
    #: by job, oldest first (:meth:`load_recent`). SQLite has no LATERAL join: the
    #: runs from each job's ``?``-th newest on, found by a correlated subquery.
    recent_runs_sql = (
        "SELECT j.name, r.status FROM runner_jobs j JOIN runner_runs_kept r "
        "ON r.job_id = j.id AND r.finished_at >= COALESCE(("
        "SELECT finished_at FROM runner_runs_kept WHERE job_id = j.id "
        "ORDER BY finished_at DESC LIMIT 1 OFFSET ? - 1), 0) "
        "WHERE j.name IN ({names}) ORDER BY j.id, r.finished_at, r.id"
    )

    def __init__(self) -> None:
        self._job_ids: dict[str, int] = {}
        #: Whether each job's last run written was ok (by job id): what makes a run notable.
        self._last_ok: dict[int, bool] = {}
        #: Whether each job was down after the last batch written (by name).
        self._last_down: dict[str, bool] = {}
        #: ``id()`` of the runs of the batch being written that changed a job's
        #: down state (:func:`new_run_rows`' ``marked``).
        self._marked: frozenset[int] = frozenset()
        #: The oldest finish among the runs this store wrote that are not compacted yet.
        self._new_since: float | None = None
        self._writer = False
        #: Runs are compacted once they span this many seconds (:data:`COMPACT_EVERY`),
        #: at most this many a transaction (:data:`COMPACT_MAX_ROWS`), the rest
        #: with the following batches.
        self.compact_every = COMPACT_EVERY
        self.compact_max_rows = COMPACT_MAX_ROWS
        self._compacting = False
        #: The compaction under way: its highest id, and the ranges of job ids left.
        self._steps: tuple[int, list[tuple[int, int]]] | None = None

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
    async def _execute_many(self, steps: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run each (statement, parameters) in one transaction; return the rows each changed."""

    @abstractmethod
    async def _insert_rows(
        self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        """Insert ``rows`` into ``table`` in one transaction (``runner copy-history``)."""

    @abstractmethod
    async def _compact(self, top: int, first_job: int, end_job: int) -> int:
        """In one transaction: :func:`compaction_statements` with these three
        parameters. Return how many runs were moved."""

    @abstractmethod
    async def _write_batch(
        self,
        new_jobs: Sequence[tuple[str, str, str]],
        records: Sequence[RunRecord],
        states: Sequence[JobState],
    ) -> dict[str, int]:
        """In one transaction: insert ``new_jobs`` (name, plugin, kind) unless
        they exist, append ``records`` to ``runner_runs_new``
        (:func:`new_run_rows` with :attr:`_last_ok` and :attr:`_marked`), update the jobs'
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

    @staticmethod
    def unit_of_time(seconds: int) -> str:
        """SQL: which ``seconds``-long stretch since the epoch ``finished_at`` is in."""
        return f"CAST(finished_at / {seconds} AS INTEGER)"

    async def _opened(self, *, create: bool) -> None:
        """After a backend connected: a writer learns whether each job's last run
        was ok, and compacts what a previous process left (a ``kill -9``, or a
        stop: runs are not compacted at a stop, which stays short) step by step
        with its first batches, not at start."""
        self._writer = create
        if not create:
            return
        self._compacting = True
        rows = await self._fetch("SELECT id, name, state, down FROM runner_jobs")
        self._last_ok = {int(job_id): state == Health.OK.value for job_id, _, state, _ in rows}
        self._last_down = {str(name): bool(down) for _, name, _, down in rows}

    # ---------------------------------------------------------------- writing

    async def write(self, records: Sequence[RunRecord], states: Iterable[JobState]) -> None:
        """Store ``records`` and the jobs' latest ``states``, all in one transaction;
        then, once the runs not yet compacted span :data:`COMPACT_EVERY`, compact
        them (in a transaction of its own: if it fails, the batch is stored and
        the next write tries again)."""
        known = self._job_ids
        new_jobs: dict[str, tuple[str, str, str]] = {}
        for record in records:
            if record.job not in known:
                new_jobs[record.job] = (record.job, record.plugin, "check")
        state_list = list(states)
        last_down = self._last_down
        flipped = set()
        for state in state_list:
            if state.job not in known:
                new_jobs[state.job] = (state.job, state.plugin, state.kind)
            if last_down.get(state.job, False) is not state.down:
                flipped.add(state.job)
        # The run a job went down or recovered with is kept too: its last in this
        # batch (a job runs once a batch unless its interval is under flush_every).
        marked = set()
        if flipped:
            for record in reversed(records):
                if record.job in flipped:
                    marked.add(id(record))
                    flipped.discard(record.job)
        self._marked = frozenset(marked)
        try:
            ids = await self._write_batch(list(new_jobs.values()), records, state_list)
        finally:
            self._marked = frozenset()
        self._job_ids.update(ids)
        for state in state_list:
            last_down[state.job] = state.down
        due = self._compacting
        if records:
            # A batch is in the order runs finished (about): its ends will do,
            # without a pass over 10,000 records on the event loop.
            first, last = records[0].finished_at, records[-1].finished_at
            if last < first:
                first, last = last, first
            since = first if self._new_since is None else min(self._new_since, first)
            self._new_since = since
            due = due or last - since >= self.compact_every
        if due:
            try:
                await self._compact_step()
            except Exception:
                # What fails waits in runner_runs_new (readers see it): a new
                # compaction starts with the next write.
                self._steps, self._compacting = None, True

    async def _compact_step(self) -> int:
        """One step of a compaction (the first starts it): the runs of a range
        of jobs, all of them up to the compaction's highest id. A step touches
        the pages of its jobs only, so the steps of a compaction cost what one
        transaction would, and each holds the writer a fraction of it."""
        if self._steps is None:
            rows = await self._fetch(
                "SELECT MIN(id), MAX(id), (SELECT MAX(id) FROM runner_jobs) FROM runner_runs_new"
            )
            low, high, last_job = rows[0]
            self._new_since = None  # runs written from now on are the next compaction's
            if high is None:
                self._compacting = False
                return 0
            count = int(high) - int(low) + 1
            steps = max(1, math.ceil(count / self.compact_max_rows))
            width = math.ceil((int(last_job or 0) + 1) / steps)
            self._steps = (int(high), [(k * width, (k + 1) * width) for k in range(steps)])
            self._steps[1][-1] = (self._steps[1][-1][0], _NO_JOB_ID)  # and jobs added since
        top, ranges = self._steps
        first_job, end_job = ranges[0]
        moved = await self._compact(top, first_job, end_job)
        ranges.pop(0)
        self._compacting = bool(ranges)  # the next step with the next write
        if not ranges:
            self._steps = None
        return moved

    async def compact(self) -> int:
        """Move the newest runs into ``runner_runs_kept`` and count them (see the
        module's notes), in steps of about :attr:`compact_max_rows` runs, until
        all this store wrote are moved. Returns how many runs were moved."""
        moved = 0
        for _ in range(2):  # the compaction under way, if any, then one of all there is
            self._compacting = True
            moved += await self._compact_step()
            while self._compacting:
                moved += await self._compact_step()
            if self._new_since is None:
                break
        return moved

    async def prune(
        self,
        *,
        before: float,
        keep_runs: int | None,
        jobs: Iterable[str] | None = None,
        chunk: int = 2000,
        ids: Mapping[str, int] | None = None,
        now: float | None = None,
    ) -> int:
        """Delete runs older than ``before`` and past the newest ``keep_runs`` of
        each job, and the ok runs that changed nothing past its newest
        :data:`RAW_RUNS`; ``chunk`` rows per transaction so the writer is never
        held long. Minute counts and latency buckets older than their windows
        go too. Returns how many runs were deleted. ``ids``: the job ids, if
        the caller has them already (a pass over every job reads them once, not
        once a job). Runs not compacted yet are not looked at."""
        if ids is None:
            ids = await self.job_ids()
        now = time.time() if now is None else now
        names = list(ids) if jobs is None else [j for j in jobs if j in ids]
        old_minute = int((now - MINUTES_KEPT) // 60)
        old_hour = int((now - LATENCY_WINDOW) // 3600) - 1
        nth_newest = self.sql(
            "SELECT finished_at FROM runner_runs_kept WHERE job_id = ? "
            "ORDER BY finished_at DESC LIMIT 1 OFFSET ?"
        )
        delete = self.sql(
            "DELETE FROM runner_runs_kept WHERE id IN (SELECT id FROM runner_runs_kept "
            "WHERE job_id = ? AND finished_at < ? AND (finished_at < ? OR notable = 0) "
            "ORDER BY finished_at LIMIT ?)"
        )
        old_minutes = self.sql("DELETE FROM runner_minutes WHERE job_id = ? AND minute < ?")
        old_buckets = self.sql("DELETE FROM runner_latency WHERE job_id = ? AND hour < ?")
        deleted = 0
        for name in names:
            job_id = ids[name]
            cut = before
            if keep_runs is not None:
                rows = await self._fetch(nth_newest, job_id, keep_runs - 1)
                if rows:  # the oldest run to keep; delete what finished before it
                    cut = max(cut, float(rows[0][0]))
            rows = await self._fetch(nth_newest, job_id, RAW_RUNS - 1)
            raw_cut = max(cut, float(rows[0][0])) if rows else cut
            # One transaction a job in the common case: its first chunk of runs
            # and its old counts together.
            count, *_ = await self._execute_many(
                [
                    (delete, (job_id, raw_cut, cut, chunk)),
                    (old_minutes, (job_id, old_minute)),
                    (old_buckets, (job_id, old_hour)),
                ]
            )
            deleted += count
            while count == chunk:
                count = await self._execute(delete, job_id, raw_cut, cut, chunk)
                deleted += count
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
        columns = ", ".join(f"r.{c}" for c in RUN_COLUMN_TYPES)
        sql = (
            "SELECT j.id, j.name, j.plugin, j.kind, j.state, j.since, j.consecutive_ok, "
            "j.consecutive_not_ok, j.count_ok, j.count_fail, j.count_error, j.count_timeout, "
            f"j.down, j.down_since, {columns} FROM runner_jobs j "
            "LEFT JOIN runner_runs_kept r ON r.id = ("
            "SELECT id FROM runner_runs_kept WHERE job_id = j.id ORDER BY finished_at DESC LIMIT 1)"
        )
        newest = (
            f"SELECT r.job_id, {columns} FROM runner_runs_new r WHERE r.id IN "
            "(SELECT MAX(id) FROM runner_runs_new GROUP BY job_id)"
        )
        params: list[str] = []
        if wanted is not None and len(wanted) <= NAMED_STATES_MAX:
            # A few jobs (a cluster member taking some over, the page reading
            # the others'): only theirs are read, not every job's last run.
            params = sorted(wanted)
            where = f" WHERE j.name IN ({_marks(len(params))})" if params else " WHERE 1 = 0"
            sql += where
        rows = await self._fetch(self.sql(sql), *params)
        latest = {int(row[0]): row[1:] for row in await self._fetch(newest)}
        states = []
        for row in rows:
            job_id, name, plugin, kind, state, since, c_ok, c_not_ok = row[:8]
            self._job_ids[name] = int(job_id)
            if wanted is not None and name not in wanted:
                continue
            if self._writer:  # a cluster member taking a job over: what the last run was
                self._last_ok[int(job_id)] = state == Health.OK.value
            counts = {
                status: int(n)
                for status, n in zip(("ok", "fail", "error", "timeout"), row[8:12], strict=True)
                if n
            }
            down, down_since = bool(row[12]), row[13]
            last_row = latest.get(int(job_id), row[14:] if row[14] is not None else None)
            last = record_from_row(name, plugin, last_row) if last_row is not None else None
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
        job's newest kept runs in the (job, finished_at) index: the cost grows
        with jobs times ``count``, not with the size of the history
        (bench/README.md, issue 20), and one over the runs not compacted yet.
        """
        names = list(dict.fromkeys(jobs))
        codes: dict[str, list[str]] = {}
        for start in range(0, len(names), _NAMES_PER_QUERY):
            chunk = names[start : start + _NAMES_PER_QUERY]
            marks = _marks(len(chunk))
            rows = await self._fetch(
                self.sql(self.recent_runs_sql.format(names=marks)), count, *chunk
            )
            for name, status in rows:
                codes.setdefault(str(name), []).append(_CODE_OF_STATUS[status])
        # Then the runs not compacted yet, newer than any kept one: one pass for all.
        known = self._job_ids
        if any(name not in known for name in names):
            known = await self.job_ids()
        wanted = {known[name]: name for name in names if name in known}
        for job_id, status in await self._fetch(
            "SELECT job_id, status FROM runner_runs_new ORDER BY id"
        ):
            name = wanted.get(int(job_id))
            if name is not None:
                codes.setdefault(name, []).append(_CODE_OF_STATUS[status])
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
        together.

        Uptime counts every run: windows of a day or less by whole minutes,
        longer ones by whole hours, the minute or hour the window starts in
        included; latency is read from the sketch of the hours of the last
        :data:`~runner.status.LATENCY_WINDOW` (the hour it starts in included).
        Runs not compacted yet are counted from ``runner_runs_new``.
        """
        known = self._job_ids
        if any(name not in known for name in jobs):
            known = await self.job_ids()  # written since, by another process
        ids = {name: known[name] for name in jobs if name in known}
        if not ids:
            return {}
        by_id = {job_id: name for name, job_id in ids.items()}
        marks = _marks(len(ids))
        counts: dict[str, dict[str, tuple[int, int]]] = {}
        for table, unit, windows in (
            ("runner_minutes", 60, [(w, s) for w, s in UPTIME_WINDOWS.items() if s <= 86400]),
            ("runner_hours", 3600, [(w, s) for w, s in UPTIME_WINDOWS.items() if s > 86400]),
        ):
            if not windows:
                continue
            column = "minute" if unit == 60 else "hour"
            starts = [int((now - seconds) // unit) for _, seconds in windows]
            sums = ", ".join(
                f"SUM(CASE WHEN t >= {start} THEN total ELSE 0 END), "
                f"SUM(CASE WHEN t >= {start} THEN ok ELSE 0 END)"
                for start in starts
            )
            sql = (
                f"SELECT job_id, {sums} FROM ("
                f"SELECT job_id, {column} AS t, runs AS total, ok FROM {table} "
                f"WHERE {column} >= ? AND job_id IN ({marks}) UNION ALL "
                f"SELECT job_id, {self.unit_of_time(unit)} AS t, 1 AS total, {OK_RUN} AS ok "
                f"FROM runner_runs_new WHERE finished_at >= ? AND job_id IN ({marks}) "
                # Runs in a maintenance window do not count (nor in the counts).
                "AND maintenance IS NULL) AS c GROUP BY job_id"
            )
            first = min(starts)
            params = [first, *ids.values(), float(first * unit), *ids.values()]
            for row in await self._fetch(self.sql(sql), *params):
                values = [int(v or 0) for v in row[1:]]
                by_window = counts.setdefault(by_id[int(row[0])], {})
                for i, (label, _) in enumerate(windows):
                    by_window[label] = (values[2 * i], values[2 * i + 1])
        uptime: dict[str, dict[str, float | None]] = {}
        for name, by_window in counts.items():
            uptime[name] = {}
            for label in UPTIME_WINDOWS:
                runs, ok = by_window.get(label, (0, 0))
                uptime[name][label] = ok / runs if runs else None
        first_hour = int((now - LATENCY_WINDOW) // 3600)
        latency_sql = (
            "SELECT job_id, bucket, SUM(runs) FROM ("
            f"SELECT job_id, bucket, runs FROM runner_latency WHERE hour >= ? "
            f"AND job_id IN ({marks}) UNION ALL "
            "SELECT job_id, bucket, 1 AS runs FROM runner_runs_new WHERE finished_at >= ? "
            f"AND status = 'ok' AND job_id IN ({marks})) AS l GROUP BY job_id, bucket "
            "ORDER BY job_id, bucket"
        )
        buckets: dict[int, list[tuple[int, int]]] = {}
        for job_id, bucket, runs in await self._fetch(
            self.sql(latency_sql),
            first_hour,
            *ids.values(),
            float(first_hour * 3600),
            *ids.values(),
        ):
            buckets.setdefault(int(job_id), []).append((int(bucket), int(runs)))
        latency = {
            by_id[job_id]: {
                label: percentile_of_buckets(counted, share) for label, share in PERCENTILES.items()
            }
            for job_id, counted in buckets.items()
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
        found: list[Sequence[Any]] = []
        for table in ("runner_runs_new", "runner_runs_kept"):
            found += await self._fetch(
                self.sql(
                    f"SELECT {RUN_COLUMNS} FROM {table} WHERE {where} "
                    "ORDER BY finished_at DESC LIMIT ?"
                ),
                *params,
                limit,
            )
        finished = RUN_COLUMNS.split(", ").index("finished_at")
        found.sort(key=lambda row: -float(row[finished]))
        return [record_from_row(job, plugin, row) for row in found[:limit]]

    async def count_runs(self) -> int:
        rows = await self._fetch(
            "SELECT (SELECT COUNT(*) FROM runner_runs_kept) "
            "+ (SELECT COUNT(*) FROM runner_runs_new)"
        )
        return int(rows[0][0])

"""History in PostgreSQL, for several daemons sharing one history.

Driver: asyncpg. It is asyncio-native (no thread hop per statement), speaks
the binary protocol, and its ``copy_records_to_table`` streams a batch with
COPY, the fastest way into PostgreSQL; it needs no libpq. psycopg 3 would
serve too, but its async mode is a layer over libpq and its COPY is slower
from Python. Installed with the ``runner-daemon[postgresql]`` extra, and imported
only when a config names a ``postgresql://`` URL.

The schema version lives in a one-row table ``runner_schema``; migrations
take a transaction-level advisory lock, so two daemons starting at once do
not both migrate. Job names are the key: daemons sharing one database must
not use the same job name for different jobs.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from runner.history.store import (
    INSERT_JOB,
    LATENCY_ACCURACY,
    LATENCY_FLOOR_MS,
    MIGRATIONS,
    RUN_COLUMN_TYPES,
    SCHEMA_VERSION,
    HistoryError,
    HistoryStore,
    SchemaTooNewError,
    SchemaTooOldError,
    compaction_statements,
    new_run_rows,
    state_rows,
)
from runner.model import JobState, RunRecord
from runner.status import LATENCY_WINDOW

if TYPE_CHECKING:
    import asyncpg

#: An arbitrary constant: the advisory lock that serialises migrations.
_MIGRATION_LOCK = 0x72756E6E  # "runn"
CONNECT_TIMEOUT = 10.0


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = parts.username or ""
    host = netloc[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class PostgresStore(HistoryStore):
    numbered_params = True

    # PostgreSQL runs the shared statement's correlated bound as a filter over
    # every run (13-26 s for 1,000 jobs of 1,000 runs); a LATERAL join seeks
    # each job's newest runs instead (18-134 ms for 5 each, bench/README.md).
    recent_runs_sql = (
        "SELECT j.name, r.status FROM runner_jobs j CROSS JOIN LATERAL ("
        "SELECT status, finished_at, id FROM runner_runs_kept WHERE job_id = j.id "
        "ORDER BY finished_at DESC, id DESC LIMIT ?) r "
        "WHERE j.name IN ({names}) ORDER BY j.id, r.finished_at, r.id"
    )

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.where = redact(url)
        self._pool: asyncpg.Pool | None = None
        self._create = True

    async def open(self, *, create: bool) -> None:
        self._create = create
        await self._ready()
        await self._opened(create=create)

    async def _ready(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        try:
            import asyncpg
        except ImportError as exc:
            raise HistoryError(
                "history.url needs the PostgreSQL driver: pip install 'runner-daemon[postgresql]'"
            ) from exc
        try:
            pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=2, timeout=CONNECT_TIMEOUT, command_timeout=60
            )
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise HistoryError(f"cannot connect to history {self.where}: {exc}") from exc
        try:
            async with pool.acquire() as conn:
                await self._check_schema(conn)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        return pool

    async def _check_schema(self, conn: asyncpg.Connection) -> None:
        version = await self._version(conn)
        if version > SCHEMA_VERSION:
            raise SchemaTooNewError(self.where, version)
        if version == SCHEMA_VERSION:
            return
        if not self._create:
            if version:
                raise SchemaTooOldError(self.where, version)
            raise HistoryError(f"no runner history in {self.where} yet (no runner_schema table)")
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS runner_schema (version INTEGER NOT NULL)"
            )
            version = await self._version(conn)  # another daemon may have been first
            for step in MIGRATIONS[version:]:
                for statement in step:
                    await conn.execute(
                        statement.format(
                            serial="SERIAL",
                            bigserial="BIGSERIAL",
                            hour=self.unit_of_time(3600),
                            minute=self.unit_of_time(60),
                            bucket=BUCKET_SQL,
                            without_rowid="",
                            recent=repr(time.time() - LATENCY_WINDOW - 3600),
                        )
                    )
            await conn.execute("DELETE FROM runner_schema")
            await conn.execute("INSERT INTO runner_schema (version) VALUES ($1)", SCHEMA_VERSION)

    @staticmethod
    async def _version(conn: asyncpg.Connection) -> int:
        exists = await conn.fetchval("SELECT to_regclass('runner_schema') IS NOT NULL")
        if not exists:
            return 0
        value = await conn.fetchval("SELECT max(version) FROM runner_schema")
        return int(value or 0)

    @staticmethod
    def unit_of_time(seconds: int) -> str:
        return f"CAST(floor(finished_at / {seconds}) AS BIGINT)"

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def _on_error(self) -> None:
        # A connection lost mid-batch: start from a fresh pool next time.
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.terminate()

    async def _fetch(self, sql: str, *params: Any) -> list[Sequence[Any]]:
        pool = await self._ready()
        try:
            rows = await pool.fetch(sql, *params)
        except Exception:
            await self._on_error()
            raise
        return [tuple(row) for row in rows]

    async def _execute(self, sql: str, *params: Any) -> int:
        pool = await self._ready()
        try:
            status = await pool.execute(sql, *params)
        except Exception:
            await self._on_error()
            raise
        return _changed(status)

    async def _execute_many(self, steps: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        pool = await self._ready()
        try:
            async with pool.acquire() as conn, conn.transaction():
                return [_changed(await conn.execute(sql, *params)) for sql, params in steps]
        except Exception:
            await self._on_error()
            raise

    async def _insert_rows(
        self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        pool = await self._ready()
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.copy_records_to_table(table, records=rows, columns=list(columns))
        except Exception:
            await self._on_error()
            raise

    async def _compact(self, top: int, first_job: int, end_job: int) -> int:
        pool = await self._ready()
        try:
            async with pool.acquire() as conn, conn.transaction():
                # Other daemons sharing the database append meanwhile: their
                # batches wait for this transaction, and those under way when
                # it began are committed first, so every statement below sees
                # the same runs (one committed since the compaction's highest id
                # was read, in a range already done, waits for the next).
                await conn.execute("LOCK TABLE runner_runs_new IN EXCLUSIVE MODE")
                moved = 0
                for statement in _COMPACTION:
                    moved = _changed(await conn.execute(statement, top, first_job, end_job))
                return moved
        except Exception:
            await self._on_error()
            raise

    async def _write_batch(
        self,
        new_jobs: Sequence[tuple[str, str, str]],
        records: Sequence[RunRecord],
        states: Sequence[JobState],
    ) -> dict[str, int]:
        pool = await self._ready()
        try:
            async with pool.acquire() as conn, conn.transaction():
                ids: dict[str, int] = {}
                if new_jobs:
                    await conn.executemany(self.sql(INSERT_JOB), new_jobs)
                    rows = await conn.fetch(
                        "SELECT name, id FROM runner_jobs WHERE name = ANY($1::text[])",
                        [name for name, *_ in new_jobs],
                    )
                    ids = {str(name): int(job_id) for name, job_id in rows}
                known = {**self._job_ids, **ids}
                if records:
                    await conn.copy_records_to_table(
                        "runner_runs_new",
                        records=_paced(new_run_rows(records, known, self._last_ok, self._marked)),
                        columns=["job_id", *RUN_COLUMN_TYPES, "notable", "bucket"],
                    )
                if states:
                    # COPY the states into a temporary table (one per connection,
                    # emptied at commit), then one UPDATE joins it.
                    await conn.execute(CREATE_STATES_TABLE)
                    await conn.copy_records_to_table(
                        "runner_states_in_v2", records=_paced(state_rows(states, known))
                    )
                    await conn.execute(UPDATE_FROM_STATES)
                return ids
        except Exception:
            await self._on_error()
            raise


#: asyncpg encodes on the event loop: COPY gives the loop back every COPY_SLICE
#: rows, so no part of a batch of 10,000 holds the loop for long.
COPY_SLICE = 500

#: Job states in bulk: 10,000 single-row UPDATEs (executemany) cost the server
#: and the event loop more than a COPY into a temporary table and one UPDATE
#: joining it (bench/README.md). The columns are :func:`state_row`'s, in its order;
#: the name carries the schema version, so a pooled server session that still
#: holds an older definition is never sent rows with other columns.
CREATE_STATES_TABLE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS runner_states_in_v2 (plugin TEXT, kind TEXT, "
    "state TEXT, since DOUBLE PRECISION, consecutive_ok BIGINT, consecutive_not_ok BIGINT, "
    "count_ok BIGINT, count_fail BIGINT, count_error BIGINT, count_timeout BIGINT, "
    "down INTEGER, down_since DOUBLE PRECISION, id INTEGER) ON COMMIT DELETE ROWS"
)
UPDATE_FROM_STATES = (
    "UPDATE runner_jobs AS j SET plugin = s.plugin, kind = s.kind, state = s.state, "
    "since = s.since, consecutive_ok = s.consecutive_ok, "
    "consecutive_not_ok = s.consecutive_not_ok, count_ok = s.count_ok, "
    "count_fail = s.count_fail, count_error = s.count_error, count_timeout = s.count_timeout, "
    "down = s.down, down_since = s.down_since "
    "FROM runner_states_in_v2 AS s WHERE j.id = s.id"
)


async def _paced(rows: Iterable[tuple[Any, ...]]) -> AsyncIterator[tuple[Any, ...]]:
    for count, row in enumerate(rows, 1):
        yield row
        if count % COPY_SLICE == 0:
            await asyncio.sleep(0)


def _changed(status: str) -> int:
    """The rows a statement changed, from its status ("DELETE 12")."""
    tail = status.rpartition(" ")[2]
    return int(tail) if tail.isdigit() else 0


#: :func:`runner.history.store.latency_bucket` in SQL.
BUCKET_SQL = (
    f"CAST(ceil(ln(GREATEST(duration_ms, {LATENCY_FLOOR_MS!r})) / "
    f"{math.log((1 + LATENCY_ACCURACY) / (1 - LATENCY_ACCURACY))!r}) AS INTEGER)"
)


def _numbered(statement: str) -> str:
    """``?`` placeholders as ``$1``, ``$2``, ..."""
    counter = iter(range(1, 100))
    return re.sub(r"\?", lambda _: f"${next(counter)}", statement)


_COMPACTION = [
    _numbered(statement)
    for statement in compaction_statements(
        PostgresStore.unit_of_time(60), PostgresStore.unit_of_time(3600)
    )
]

"""History in a SQLite file: the default, nothing to install or run.

The standard library's ``sqlite3`` on one worker thread of its own, so no
query ever runs on the event loop. WAL mode: readers (``runner status``,
another process) never block the writer and the writer never blocks them.
``synchronous=NORMAL``: in WAL mode a commit survives the process being
killed (only a power cut can lose the last commits, never corrupt the file).
Each batch is one transaction.

A write that fails (a full disk, a file made read-only) rolls back and
closes the connection; the next attempt opens it again, so writing resumes
by itself once the cause is gone.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from runner.history.store import (
    INSERT_JOB,
    INSERT_NEW_RUN,
    MIGRATIONS,
    SCHEMA_VERSION,
    UPDATE_JOB_STATE,
    HistoryError,
    HistoryStore,
    SchemaTooNewError,
    SchemaTooOldError,
    compaction_statements,
    latency_bucket,
    new_run_rows,
    state_rows,
)
from runner.model import JobState, RunRecord
from runner.status import LATENCY_WINDOW

T = TypeVar("T")

#: How long a statement waits for another process's write lock.
BUSY_TIMEOUT_MS = 5000


class SQLiteStore(HistoryStore):
    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.where = str(self.path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runner-history")
        self._conn: sqlite3.Connection | None = None
        self._create = True
        self._closed = False

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ---------------------------------------------------------------- connection

    async def open(self, *, create: bool) -> None:
        self._create = create
        await self._call(self._connection)
        await self._opened(create=create)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        if self._create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HistoryError(
                    f"cannot create the folder for history {self.where}: {exc.strerror}; "
                    "set history.path to a writable place"
                ) from exc
        elif not self.path.exists():
            raise HistoryError(
                f"no history at {self.where}: the daemon has not written any yet, or it "
                "writes elsewhere (set history.path, or STATE_DIRECTORY as the service has it)"
            )
        if self._create:
            self._check_writable()
        try:
            if self._create:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            else:
                # A reader must not leave -wal and -shm files behind: made by
                # root (`sudo runner status`), they would lock the service's
                # own user out of its history. Without a -wal file every
                # commit is in the main file, which is then read as immutable.
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                if not Path(f"{self.path}-wal").exists():
                    uri += "&immutable=1"
                conn = sqlite3.connect(
                    uri,
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                conn.close()
                raise SchemaTooNewError(self.where, version)
            if self._create:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                if version < SCHEMA_VERSION:
                    self._migrate(conn, version)
            elif version == 0:
                conn.close()
                raise HistoryError(f"{self.where} is not a runner history (no schema in it)")
            elif version < SCHEMA_VERSION:
                conn.close()
                raise SchemaTooOldError(self.where, version)
        except sqlite3.DatabaseError as exc:
            raise HistoryError(f"cannot open history {self.where}: {exc}") from exc
        self._conn = conn
        return conn

    def _check_writable(self) -> None:
        # SQLite would open a write-protected file read-only without a word,
        # and keep reusing that descriptor in this process even after the file
        # is made writable again; refuse it up front, with a message instead.
        for suffix in ("", "-wal", "-shm"):
            path = Path(f"{self.path}{suffix}")
            try:
                with path.open("r+b"):
                    pass
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise HistoryError(
                    f"history file {path} is not writable ({exc.strerror}); make it and its "
                    "-wal and -shm files writable by the daemon's user"
                ) from exc

    @staticmethod
    def _migrate(conn: sqlite3.Connection, version: int) -> None:
        # The sketch's bucket in SQL: SQLite may be built without ln().
        conn.create_function("runner_latency_bucket", 1, latency_bucket, deterministic=True)
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated between our read and our lock.
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            for step in MIGRATIONS[version:]:
                for statement in step:
                    conn.execute(
                        statement.format(
                            serial="INTEGER",
                            bigserial="INTEGER",
                            hour=SQLiteStore.unit_of_time(3600),
                            minute=SQLiteStore.unit_of_time(60),
                            bucket="runner_latency_bucket(duration_ms)",
                            without_rowid=" WITHOUT ROWID",
                            recent=repr(time.time() - LATENCY_WINDOW - 3600),
                        )
                    )
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        if self._closed:  # idempotent, as HistoryStore.close promises
            return
        self._closed = True
        await self._call(self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _in_transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            result = work(conn)
            conn.execute("COMMIT")
            return result
        except BaseException:
            # A full disk or a read-only file: start from a fresh connection next time.
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._close()
            raise

    # ---------------------------------------------------------------- statements

    async def _fetch(self, sql: str, *params: Any) -> list[Sequence[Any]]:
        def fetch() -> list[Sequence[Any]]:
            return self._connection().execute(sql, params).fetchall()

        return await self._call(fetch)

    async def _execute(self, sql: str, *params: Any) -> int:
        return await self._call(self._in_transaction, lambda c: c.execute(sql, params).rowcount)

    async def _execute_many(self, steps: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        def work(conn: sqlite3.Connection) -> list[int]:
            return [conn.execute(sql, params).rowcount for sql, params in steps]

        return await self._call(self._in_transaction, work)

    async def _insert_rows(
        self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        await self._call(self._in_transaction, lambda c: c.executemany(sql, rows))

    async def _compact(self, top: int, first_job: int, end_job: int) -> int:
        def work(conn: sqlite3.Connection) -> int:
            moved = 0
            for statement in _COMPACTION:
                moved = conn.execute(statement, (top, first_job, end_job)).rowcount
            return moved  # the last statement's: the runs deleted

        return await self._call(self._in_transaction, work)

    async def _write_batch(
        self,
        new_jobs: Sequence[tuple[str, str, str]],
        records: Sequence[RunRecord],
        states: Sequence[JobState],
    ) -> dict[str, int]:
        def work(conn: sqlite3.Connection) -> dict[str, int]:
            ids: dict[str, int] = {}
            if new_jobs:
                conn.executemany(INSERT_JOB, new_jobs)
                for name, *_ in new_jobs:
                    ids[name] = conn.execute(
                        "SELECT id FROM runner_jobs WHERE name = ?", (name,)
                    ).fetchone()[0]
            known = {**self._job_ids, **ids}
            # Rows are made here, on this thread, as executemany takes them.
            conn.executemany(
                INSERT_NEW_RUN, new_run_rows(records, known, self._last_ok, self._marked)
            )
            conn.executemany(UPDATE_JOB_STATE, state_rows(states, known))
            return ids

        return await self._call(self._in_transaction, work)

    async def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``ok`` for a sound file."""
        rows = await self._fetch("PRAGMA integrity_check")
        return "; ".join(str(r[0]) for r in rows)


_COMPACTION = compaction_statements(SQLiteStore.unit_of_time(60), SQLiteStore.unit_of_time(3600))

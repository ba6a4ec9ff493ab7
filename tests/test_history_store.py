"""History stores, read back as ``runner status`` and ``runner history`` read them.

Every test runs against both backends: a SQLite file and a real PostgreSQL
server (tests/postgres.py), each test on a fresh file or database. Records
go through a :class:`ResultHub` exactly as the daemon's do, so the stored
states are the daemon's. Times are relative to a fixed ``NOW``.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from runner.history import (
    SCHEMA_VERSION,
    HistoryError,
    HistoryStore,
    SchemaTooNewError,
    SQLiteStore,
)
from runner.history.postgres import PostgresStore
from runner.history.store import LATENCY_ACCURACY, MIGRATIONS
from runner.model import Health, RunRecord, Sent
from runner.plugin import Result, Status
from runner.results import ResultHub

NOW = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
MIN, HOUR, DAY = 60.0, 3600.0, 86400.0
NO_UPTIME = {"1h": None, "24h": None, "7d": None, "30d": None}
NO_LATENCY = {"p50": None, "p95": None}


class Backend:
    """Stores of one backend on this test's file or database; closes them at the end."""

    def __init__(self, name: str, location: str) -> None:
        self.name = name
        self.location = location
        self._stores: list[HistoryStore] = []

    async def __call__(self, *, create: bool = True) -> HistoryStore:
        """A store opened on the location (``create=False``: as a reader)."""
        store: HistoryStore
        if self.name == "sqlite":
            store = SQLiteStore(self.location)
        else:
            store = PostgresStore(self.location)
        self._stores.append(store)
        await store.open(create=create)
        return store

    async def close(self) -> None:
        for store in reversed(self._stores):
            await store.close()

    async def schema_versions(self) -> list[int]:
        if self.name == "sqlite":
            with closing(sqlite3.connect(self.location)) as conn:
                return [conn.execute("PRAGMA user_version").fetchone()[0]]
        conn = await asyncpg.connect(self.location)
        try:
            return [row[0] for row in await conn.fetch("SELECT version FROM runner_schema")]
        finally:
            await conn.close()

    async def set_schema_version(self, version: int) -> None:
        """What a newer runner would leave behind."""
        if self.name == "sqlite":
            with closing(sqlite3.connect(self.location)) as conn:
                conn.execute(f"PRAGMA user_version = {version}")
            return
        conn = await asyncpg.connect(self.location)
        try:
            await conn.execute("UPDATE runner_schema SET version = $1", version)
        finally:
            await conn.close()

    async def create_version_1(self) -> None:
        """A history as the first release wrote it: schema 1, one job with one run."""
        job = (
            "INSERT INTO runner_jobs (name, plugin, state, since, consecutive_not_ok, count_fail) "
            "VALUES ('web', 'http-status', 'failing', 100.0, 1, 1)"
        )
        run = (
            "INSERT INTO runner_runs (job_id, status, message, fields, started_at, finished_at, "
            "duration_ms) VALUES (1, 'fail', 'status 500', '{\"status_code\": 500}', 99.9, 100.0, "
            "100.0)"
        )
        if self.name == "sqlite":
            with closing(sqlite3.connect(self.location)) as conn:
                for statement in MIGRATIONS[0]:
                    conn.execute(statement.format(serial="INTEGER", bigserial="INTEGER"))
                conn.execute(job)
                conn.execute(run)
                conn.execute("PRAGMA user_version = 1")
                conn.commit()
            return
        conn = await asyncpg.connect(self.location)
        try:
            await conn.execute("CREATE TABLE runner_schema (version INTEGER NOT NULL)")
            await conn.execute("INSERT INTO runner_schema VALUES (1)")
            for statement in MIGRATIONS[0]:
                await conn.execute(statement.format(serial="SERIAL", bigserial="BIGSERIAL"))
            await conn.execute(job)
            await conn.execute(run)
        finally:
            await conn.close()

    async def create_version_3(self) -> None:
        """A history as schema 3 left it (before maintenance windows): one job, two runs."""
        job = "INSERT INTO runner_jobs (name, plugin, state, since, count_ok, count_fail) VALUES "
        job += "('web', 'http-status', 'ok', 200.0, 1, 1)"
        runs = [
            "INSERT INTO runner_runs (job_id, status, message, fields, started_at, finished_at, "
            f"duration_ms) VALUES (1, '{status}', '{status} run', NULL, {at - 0.1}, {at}, 100.0)"
            for status, at in (("fail", 100.0), ("ok", 200.0))
        ]
        hours = "INSERT INTO runner_hours (job_id, hour, runs, ok) VALUES (1, 0, 2, 1)"
        if self.name == "sqlite":
            with closing(sqlite3.connect(self.location)) as conn:
                for step in MIGRATIONS[:3]:
                    for statement in step:
                        conn.execute(
                            statement.format(
                                serial="INTEGER",
                                bigserial="INTEGER",
                                hour="CAST(finished_at / 3600 AS INTEGER)",
                            )
                        )
                for statement in (job, *runs, hours):
                    conn.execute(statement)
                conn.execute("PRAGMA user_version = 3")
                conn.commit()
            return
        conn = await asyncpg.connect(self.location)
        try:
            await conn.execute("CREATE TABLE runner_schema (version INTEGER NOT NULL)")
            await conn.execute("INSERT INTO runner_schema VALUES (3)")
            for step in MIGRATIONS[:3]:
                for statement in step:
                    await conn.execute(
                        statement.format(
                            serial="SERIAL",
                            bigserial="BIGSERIAL",
                            hour="CAST(floor(finished_at / 3600) AS BIGINT)",
                        )
                    )
            for statement in (job, *runs, hours):
                await conn.execute(statement)
        finally:
            await conn.close()

    async def has_anything(self) -> bool:
        """Whether a file or any table exists at the location."""
        if self.name == "sqlite":
            return await asyncio.to_thread(Path(self.location).exists)
        conn = await asyncpg.connect(self.location)
        try:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN "
                    "('pg_catalog', 'information_schema')"
                )
            )
        finally:
            await conn.close()

    @asynccontextmanager
    async def read_transaction(self) -> AsyncIterator[Callable[[], Awaitable[int]]]:
        """A read transaction held open in a connection of its own (another
        ``runner status``, say); yields a function counting runs as it sees them."""
        if self.name == "sqlite":
            with closing(sqlite3.connect(self.location, isolation_level=None)) as lite:
                lite.execute("BEGIN")

                async def count_sqlite() -> int:
                    return int(lite.execute("SELECT count(*) FROM runner_runs").fetchone()[0])

                await count_sqlite()  # the snapshot starts at the first read
                try:
                    yield count_sqlite
                finally:
                    lite.execute("ROLLBACK")
            return
        conn = await asyncpg.connect(self.location)
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):

                async def count_pg() -> int:
                    return int(await conn.fetchval("SELECT count(*) FROM runner_runs"))

                await count_pg()
                yield count_pg
        finally:
            await conn.close()


@pytest.fixture(
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql")]
)
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Opens stores on a fresh SQLite file or PostgreSQL database; closes them after."""
    if request.param == "sqlite":
        backend = Backend("sqlite", str(tmp_path / "history.sqlite3"))
    else:
        backend = Backend("postgresql", request.getfixturevalue("postgres_url"))
    yield backend
    await backend.close()


def run(
    job: str,
    result: Result,
    finished_at: float,
    duration_ms: float = 10.0,
    plugin: str = "http-status",
) -> RunRecord:
    """The record of a run of ``job`` that finished at about ``finished_at``."""
    return RunRecord.of(
        job, plugin, result, started_at=finished_at - duration_ms / 1000, duration_ms=duration_ms
    )


async def write(store: HistoryStore, hub: ResultHub, records: Sequence[RunRecord]) -> None:
    """One batch, as the daemon writes it: the records and the states after them."""
    for record in records:
        hub.publish(record)
    jobs = dict.fromkeys(record.job for record in records)
    await store.write(records, [hub.state(job) for job in jobs])


def messages(records: Sequence[RunRecord]) -> list[str | None]:
    return [record.message for record in records]


def assert_same_run(got: RunRecord, want: RunRecord) -> None:
    assert (got.job, got.plugin, got.status, got.message) == (
        want.job,
        want.plugin,
        want.status,
        want.message,
    )
    assert isinstance(got.status, Status)
    assert dict(got.fields) == dict(want.fields)
    assert got.started_at == pytest.approx(want.started_at, abs=1e-6)
    assert got.finished_at == pytest.approx(want.finished_at, abs=1e-6)
    assert got.duration_ms == want.duration_ms
    assert got.attempts == want.attempts


# --------------------------------------------------------------------------- writing


async def test_runs_read_back_field_for_field(store_factory: Backend) -> None:
    store = await store_factory()
    hub = ResultHub()
    first = [
        run(
            "web",
            Result.ok("status 200", status_code=200, url="https://exämple.org/ü", redirects=0),
            NOW - 120.123456,
            12.345678,
        ),
        run(
            "shop",
            Result.fail(
                "title ≠ «Shop» 🛒",
                title="Bäckerei 東京",
                nested={"list": [1, 2.5, None, True, {"deep": "ñ"}], "empty": {}, "zero": 0},
            ),
            NOW - 100.000001,
            1234.5,
            plugin="page-title",
        ),
    ]
    second = [
        replace(run("web", Result.error("connection refused"), NOW - 60.5, 0.25), attempts=3),
        run("web", Result(Status.TIMEOUT), NOW - 30.0, 10_000.0),
        run("dns", Result.ok(), NOW - 10.0, 3.0),  # a job first seen in the second batch
    ]
    await write(store, hub, first)
    await write(store, hub, second)

    reader = await store_factory(create=False)
    for job in ("web", "shop", "dns"):
        want = sorted((r for r in first + second if r.job == job), key=lambda r: -r.finished_at)
        got = await reader.runs(job)
        assert len(got) == len(want), job
        for got_run, want_run in zip(got, want, strict=True):
            assert_same_run(got_run, want_run)
    assert await reader.count_runs() == 5
    assert set(await reader.job_ids()) == {"web", "shop", "dns"}


async def test_load_states_is_the_state_after_the_last_run(store_factory: Backend) -> None:
    store = await store_factory()
    hub = ResultHub()
    went_down = run("web", Result.fail("status 500"), NOW - 300)
    came_up = run("api", Result.ok(), NOW - 90)
    await write(
        store,
        hub,
        [
            run("web", Result.ok(), NOW - 500),
            run("web", Result.ok(), NOW - 400),
            went_down,
            run("api", Result.fail("down"), NOW - 250),
        ],
    )
    last = run("web", Result(Status.TIMEOUT, "no answer"), NOW - 100)
    await write(
        store,
        hub,
        [
            run("web", Result.error("refused"), NOW - 200),
            last,
            came_up,
            run("api", Result.ok(), NOW - 80),
        ],
    )
    hub.track("echo", "echo-listener", "service")
    hub.service_ready("echo")
    await store.write([], [hub.state("echo")])  # a service: a state, never a run

    restarted = await store_factory()
    loaded = {state.job: state for state in await restarted.load_states()}
    assert set(loaded) == {"web", "api", "echo"}

    web = loaded["web"]
    assert (web.plugin, web.kind, web.state) == ("http-status", "check", Health.FAILING)
    assert web.since == pytest.approx(went_down.finished_at, abs=1e-6)
    assert (web.consecutive_ok, web.consecutive_not_ok) == (0, 3)
    assert dict(web.counts) == {"ok": 2, "fail": 1, "error": 1, "timeout": 1}
    assert web.last is not None
    assert_same_run(web.last, last)

    api = loaded["api"]
    assert api.state is Health.OK
    assert api.since == pytest.approx(came_up.finished_at, abs=1e-6)
    assert (api.consecutive_ok, api.consecutive_not_ok) == (2, 0)
    assert dict(api.counts) == {"ok": 2, "fail": 1}

    echo = loaded["echo"]
    assert (echo.plugin, echo.kind, echo.state, echo.last) == (
        "echo-listener",
        "service",
        Health.OK,
        None,
    )
    assert echo.since == pytest.approx(hub.state("echo").since, abs=1e-6)

    assert [s.job for s in await restarted.load_states(["api", "unknown"])] == ["api"]

    # A daemon seeded from it goes on with the streak: still failing since the same run.
    after = ResultHub()
    after.seed(loaded.values())
    after.track("web", "http-status", "check")
    again = after.publish(run("web", Result.fail("status 500"), NOW - 10))
    assert again.since == web.since and again.consecutive_not_ok == 4
    assert again.counts["fail"] == 2


async def test_load_recent_is_each_jobs_last_statuses_oldest_first(
    store_factory: Backend,
) -> None:
    store = await store_factory()
    hub = ResultHub()
    results = {"o": Result.ok(), "f": Result.fail("500"), "e": Result.error("x")}
    web = "ooffoefof"
    await write(store, hub, [run("web", results[c], NOW - 100 + i) for i, c in enumerate(web)])
    await write(
        store, hub, [run("api", Result(Status.TIMEOUT), NOW - 50), run("db", Result.ok(), NOW)]
    )
    # Two runs that finished at the same instant as the third newest: still three.
    await write(store, hub, [run("tie", results[c], NOW - 10) for c in "fo"])
    await write(store, hub, [run("tie", Result.ok(), NOW - 5 + i) for i in range(2)])

    reader = await store_factory(create=False)
    assert await reader.load_recent(["web", "api", "tie", "nobody"], 3) == {
        "web": "fof",
        "api": "t",
        "tie": "ooo",
    }
    assert (await reader.load_recent(["web"], 100))["web"] == web
    assert (await reader.load_recent(["web"], 1))["web"] == "f"
    assert hub.state("web").recent_codes == web  # the letters the hub keeps


# --------------------------------------------------------------------------- stats


async def test_stats_uptime_is_the_share_of_ok_runs_in_each_window(
    store_factory: Backend,
) -> None:
    store = await store_factory()
    hub = ResultHub()

    def runs_at(at: float, ok: int, not_ok: int) -> list[RunRecord]:
        return [run("web", Result.ok(), at - i) for i in range(ok)] + [
            run("web", Result.fail("status 500"), at - ok - i) for i in range(not_ok)
        ]

    records = (
        runs_at(NOW - 30 * MIN, ok=3, not_ok=1)
        + runs_at(NOW - 5 * HOUR, ok=0, not_ok=4)
        + runs_at(NOW - 3 * DAY, ok=8, not_ok=0)
        + runs_at(NOW - 20 * DAY, ok=0, not_ok=16)
        + runs_at(NOW - 40 * DAY, ok=64, not_ok=0)  # outside every window
        + [run("old", Result.ok(), NOW - 31 * DAY)]
    )
    records.sort(key=lambda r: r.finished_at)
    await write(store, hub, records)
    hub.track("new", "sleep", "check")
    await store.write([], [hub.state("new")])

    stats = await store.stats(["web", "old", "new", "ghost"], NOW)
    assert set(stats) == {"web", "old", "new"}
    # 1h: 3 of 4; 24h: 3 of 8; 7d: 11 of 16; 30d: 11 of 32.
    assert dict(stats["web"].uptime) == {"1h": 0.75, "24h": 0.375, "7d": 0.6875, "30d": 0.34375}
    assert dict(stats["old"].uptime) == NO_UPTIME
    assert dict(stats["old"].latency_ms) == NO_LATENCY
    assert dict(stats["new"].uptime) == NO_UPTIME
    assert dict(stats["new"].latency_ms) == NO_LATENCY
    states = {s.job: s for s in await store.load_states(["web", "new"])}
    assert dict(states["web"].counts) == {"ok": 75, "fail": 21}
    assert states["web"].state is Health.OK and states["web"].consecutive_ok == 3
    assert states["new"].state is Health.UNKNOWN


async def test_runs_in_a_maintenance_window_are_stored_with_its_name_and_not_in_uptime(
    store_factory: Backend,
) -> None:
    store = await store_factory()
    # Each hour's window (1h) and each day's (7d, 30d: counted by hour) alike:
    # 2 ok and 1 failed outside a window, 5 failed inside one.
    records = []
    for at in (NOW - 10 * MIN, NOW - 3 * DAY):
        records += [run("web", Result.ok(), at - i) for i in range(2)]
        records.append(run("web", Result.fail("status 500"), at - 2))
        records += [
            replace(run("web", Result.fail("deploying"), at - 10 - i), maintenance="deploy")
            for i in range(5)
        ]
    records.sort(key=lambda r: r.finished_at)
    await store.write(records, [])

    stats = (await store.stats(["web"], NOW))["web"]
    assert dict(stats.uptime) == {"1h": 2 / 3, "24h": 2 / 3, "7d": 2 / 3, "30d": 2 / 3}
    stored = await store.runs("web", limit=100)
    assert len(stored) == 16
    assert {r.maintenance for r in stored} == {"deploy", None}
    assert {r.message for r in stored if r.maintenance == "deploy"} == {"deploying"}


async def test_stats_see_jobs_another_process_wrote_since(store_factory: Backend) -> None:
    # runner status opens its own store: the ids it knows can be older than the jobs.
    writer, reader = await store_factory(), await store_factory()
    assert await reader.stats(["web"], NOW) == {}
    await write(writer, ResultHub(), [run("web", Result.ok(), NOW - MIN)])
    assert (await reader.stats(["web"], NOW))["web"].uptime["1h"] == 1.0


async def test_stats_latency_is_nearest_rank_p50_p95_of_ok_runs_in_24h(
    store_factory: Backend,
) -> None:
    store = await store_factory()
    hub = ResultHub()
    # 21 ok runs of 10..210 ms: nearest rank p50 is the 11th (110), p95 the 20th (200);
    # 0.95 * 21 = 19.95 is no whole rank, so float rounding cannot tip it either way.
    durations = [10.0 * k for k in range(1, 22)]
    random.Random(7).shuffle(durations)  # the order they ran in must not matter
    records = [run("web", Result.ok(), NOW - HOUR - i * MIN, d) for i, d in enumerate(durations)]
    # Not ok, or older than 24 h: not counted (either would move p50 and p95).
    records += [run("web", Result.fail("slow"), NOW - 2 * HOUR - i, 99_000.0) for i in range(5)]
    records += [run("web", Result.ok(), NOW - 2 * DAY - i, 50_000.0) for i in range(5)]
    records += [run("one", Result.ok(), NOW - HOUR, 42.5)]
    records += [run("down", Result.fail("status 500"), NOW - HOUR, 7.0)]
    records.sort(key=lambda r: r.finished_at)
    await write(store, hub, records)

    stats = await store.stats(["web", "one", "down"], NOW)
    # Read from the sketch: within its accuracy (1 %) of the runs' own durations.
    within = pytest.approx
    assert dict(stats["web"].latency_ms) == {
        "p50": within(110.0, rel=LATENCY_ACCURACY),
        "p95": within(200.0, rel=LATENCY_ACCURACY),
    }
    assert dict(stats["one"].latency_ms) == {
        "p50": within(42.5, rel=LATENCY_ACCURACY),
        "p95": within(42.5, rel=LATENCY_ACCURACY),
    }
    assert dict(stats["down"].latency_ms) == NO_LATENCY
    assert stats["down"].uptime["24h"] == 0.0


# --------------------------------------------------------------------------- runs()


async def test_runs_are_newest_first_and_filter_by_since_status_and_limit(
    store_factory: Backend,
) -> None:
    store = await store_factory()
    hub = ResultHub()
    results = [
        Result.ok("0"),
        Result.fail("1"),
        Result.ok("2"),
        Result.error("3"),
        Result.ok("4"),
        Result.fail("5"),
        Result.ok("6"),
        Result.ok("7"),
        Result(Status.TIMEOUT, "8"),
        Result.fail("9"),
    ]
    records = [run("web", result, NOW - (10 - i) * MIN) for i, result in enumerate(results)]
    # Another job's runs, interleaved, are never mixed in.
    others = [run("api", Result.fail("api"), NOW - (10 - i) * MIN + 1) for i in range(10)]
    await write(store, hub, records[:5] + others)
    await write(store, hub, records[5:])

    assert messages(await store.runs("web")) == list("9876543210")
    since = records[6].finished_at  # inclusive
    assert messages(await store.runs("web", since=since)) == list("9876")
    assert messages(await store.runs("web", status="fail")) == list("951")
    assert messages(await store.runs("web", limit=3)) == list("987")
    assert messages(
        await store.runs("web", since=records[2].finished_at, status="ok", limit=2)
    ) == list("76")
    assert await store.runs("web", since=NOW + 1) == []
    assert await store.runs("web", status="timeout") != []
    assert await store.runs("nobody") == []


# --------------------------------------------------------------------------- retention


async def test_prune_by_age_deletes_only_older_runs_in_small_steps(
    store_factory: Backend,
) -> None:
    store = await store_factory()
    hub = ResultHub()
    web = [run("web", Result.ok(f"{age}d"), NOW - age * DAY) for age in range(10, 0, -1)]
    api = [run("api", Result.ok(f"{age}h"), NOW - age * HOUR) for age in range(10, 0, -1)]
    await write(store, hub, web + api)

    deleted = await store.prune(before=NOW - 5.5 * DAY, keep_runs=None, chunk=2)
    assert deleted == 5
    assert messages(await store.runs("web")) == ["1d", "2d", "3d", "4d", "5d"]
    assert len(await store.runs("api")) == 10
    assert await store.count_runs() == 15
    assert await store.prune(before=NOW - 5.5 * DAY, keep_runs=None) == 0
    # The counts are the job's since history began: pruning runs keeps them.
    states = {s.job: s for s in await store.load_states()}
    assert dict(states["web"].counts) == {"ok": 10}


async def test_prune_keep_runs_keeps_exactly_the_newest_n_of_each_job(
    store_factory: Backend,
) -> None:
    store = await store_factory()
    hub = ResultHub()

    def runs_of(job: str, n: int) -> list[RunRecord]:
        return [
            run(job, Result.ok(f"{job} {age}"), NOW - age * MIN) for age in range(n - 1, -1, -1)
        ]

    await write(store, hub, runs_of("web", 10) + runs_of("api", 3) + runs_of("dns", 6))

    deleted = await store.prune(before=0.0, keep_runs=4, jobs=["web", "api", "unknown"])
    assert deleted == 6
    assert messages(await store.runs("web")) == ["web 0", "web 1", "web 2", "web 3"]
    assert len(await store.runs("api")) == 3
    assert len(await store.runs("dns")) == 6  # not named

    # Both limits: a run goes if it is past the newest 4 or older than 2.5 minutes.
    deleted = await store.prune(before=NOW - 2.5 * MIN, keep_runs=4)
    assert deleted == 1 + 0 + 3
    assert messages(await store.runs("web")) == ["web 0", "web 1", "web 2"]
    assert messages(await store.runs("api")) == ["api 0", "api 1", "api 2"]
    assert messages(await store.runs("dns")) == ["dns 0", "dns 1", "dns 2"]


# --------------------------------------------------------------------------- schema


async def test_reopening_keeps_the_schema_and_the_runs(store_factory: Backend) -> None:
    hub = ResultHub()
    first = await store_factory()
    await write(first, hub, [run("web", Result.ok("first"), NOW - 20)])
    await first.close()

    expected = ["first"]
    for n, create in enumerate([True, True, False]):
        store = await store_factory(create=create)
        assert await store_factory.schema_versions() == [SCHEMA_VERSION]
        if create:  # a restarted daemon writes to the jobs it already had
            await write(store, hub, [run("web", Result.ok(f"again {n}"), NOW - 10 + n)])
            expected.insert(0, f"again {n}")
        assert messages(await store.runs("web")) == expected
        await store.close()
    assert expected == ["again 1", "again 0", "first"]


async def test_a_version_1_history_is_migrated_and_keeps_what_it_held(
    store_factory: Backend,
) -> None:
    await store_factory.create_version_1()
    store = await store_factory()
    assert await store_factory.schema_versions() == [SCHEMA_VERSION]
    (web,) = await store.load_states()
    assert (web.job, web.state, web.since, web.consecutive_not_ok) == (
        "web",
        Health.FAILING,
        100.0,
        1,
    )
    assert (web.down, web.down_since) == (False, None)  # what version 2 added
    (only,) = await store.runs("web")
    assert (only.status, only.message, dict(only.fields)) == (
        Status.FAIL,
        "status 500",
        {"status_code": 500},
    )
    # Schema 3 counted the runs there were by hour (for long uptime windows).
    assert [
        tuple(int(v) for v in row)
        for row in await store._fetch("SELECT job_id, hour, runs, ok FROM runner_hours")
    ] == [(1, 0, 1, 0)]
    # And the new table works.
    await store.record_alert("web", "ops", Sent("down", 100.0, 101.0))
    await store.record_alert("web", "ops", Sent("recovered", None, 102.0))
    assert await store.load_alerts() == {("web", "ops"): Sent("recovered", None, 102.0)}


async def test_a_version_3_history_is_migrated_keeping_its_runs_and_stores_maintenance(
    store_factory: Backend,
) -> None:
    await store_factory.create_version_3()
    store = await store_factory()
    assert await store_factory.schema_versions() == [SCHEMA_VERSION] == [7]
    kept = await store.runs("web")
    assert [(r.status, r.message, r.maintenance) for r in kept] == [
        (Status.OK, "ok run", None),
        (Status.FAIL, "fail run", None),
    ]
    (web,) = await store.load_states()
    assert (web.state, dict(web.counts), web.last and web.last.message) == (
        Health.OK,
        {"ok": 1, "fail": 1},
        "ok run",
    )
    # The new column takes the window's name.
    await store.write([replace(run("web", Result.fail("planned"), NOW), maintenance="deploy")], [])
    (newest, *_) = await store.runs("web")
    assert (newest.message, newest.maintenance) == ("planned", "deploy")
    assert newest.to_json()["maintenance"] == "deploy"
    # Version 5: the cluster member that made a run (none for the old ones).
    assert {r.member for r in kept} == {None}
    # Version 6: and where that member is.
    assert {r.location for r in kept} == {None}
    await store.write(
        [replace(run("web", Result.ok("by b"), NOW + 1), member="b", location="eu-west")], []
    )
    (newest, *_) = await store.runs("web")
    assert (newest.message, newest.member) == ("by b", "b")
    assert newest.to_json()["member"] == "b"
    assert (newest.location, newest.to_json()["location"]) == ("eu-west", "eu-west")


async def test_a_schema_newer_than_this_runner_is_refused_naming_the_version(
    store_factory: Backend,
) -> None:
    store = await store_factory()
    await write(store, ResultHub(), [run("web", Result.ok(), NOW)])
    await store.close()
    await store_factory.set_schema_version(99)

    for create in (True, False):
        with pytest.raises(SchemaTooNewError) as info:
            await store_factory(create=create)
        message = str(info.value)
        assert "schema version 99" in message
        assert f"understands ({SCHEMA_VERSION})" in message
        assert "Upgrade runner" in message
    assert await store_factory.schema_versions() == [99]  # left as it was


async def test_reading_where_nothing_was_written_says_so_and_creates_nothing(
    store_factory: Backend,
) -> None:
    with pytest.raises(HistoryError) as info:
        await store_factory(create=False)
    message = str(info.value)
    assert store_factory.location in message
    assert "no history" in message or "no runner history" in message
    assert not await store_factory.has_anything()


# --------------------------------------------------------------------------- concurrency


async def test_a_reader_sees_committed_batches_and_never_blocks_the_writer(
    store_factory: Backend,
) -> None:
    writer = await store_factory()
    hub = ResultHub()

    def batch(n: int) -> list[RunRecord]:
        return [run(f"job{i}", Result.ok(f"{n}"), NOW - 1000 + n) for i in range(5)]

    await write(writer, hub, batch(0))
    reader = await store_factory(create=False)
    assert await reader.count_runs() == 5

    async with store_factory.read_transaction() as count_in_snapshot:
        assert await count_in_snapshot() == 5
        # Blocked by the open read, the writer would wait (SQLite: up to its 5 s busy timeout).
        async with asyncio.timeout(2):
            await write(writer, hub, batch(1))
        assert await count_in_snapshot() == 5  # that reader still reads its snapshot
        assert await reader.count_runs() == 10  # a new read sees the commit

    # Reading while batches are written: only whole batches, never fewer than before.
    seen: list[int] = []
    done = asyncio.Event()

    async def keep_writing() -> None:
        for n in range(2, 22):
            await write(writer, hub, batch(n))
        done.set()

    async def keep_reading() -> None:
        while not done.is_set():
            seen.append(await reader.count_runs())

    async with asyncio.timeout(10):
        await asyncio.gather(keep_writing(), keep_reading())
    assert seen and all(count % 5 == 0 for count in seen), seen
    assert seen == sorted(seen)
    assert await reader.count_runs() == 110
    states = {s.job: s for s in await reader.load_states()}
    assert states["job0"].counts == {"ok": 22} and states["job0"].last is not None
    assert states["job0"].last.message == "21"

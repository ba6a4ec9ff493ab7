"""Schema 6: what is kept of the runs, what is counted, and the migration to it.

Against both backends, as tests/test_history_store.py (whose fixtures these
use): a SQLite file and a real PostgreSQL server, each test on a fresh one.
What is asserted is what users read back: ``runs()`` (``runner history``),
``stats()`` (``runner status``'s uptime and latency) and ``load_states()``.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import sqlite3
import time
from contextlib import closing
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

import test_history_store
from runner.history import SCHEMA_VERSION, HistoryError
from runner.history.store import (
    LATENCY_ACCURACY,
    MIGRATIONS,
    RAW_RUNS,
    RUN_COLUMNS,
    bucket_value,
    latency_bucket,
    record_from_row,
)
from runner.model import RunRecord
from runner.plugin import Result, Status
from runner.results import ResultHub
from runner.status import UPTIME_WINDOWS
from test_history_store import DAY, HOUR, MIN, NOW, Backend, run, write

#: The fixture of tests/test_history_store.py: a fresh SQLite file or PostgreSQL database.
store_factory = test_history_store.store_factory


def nearest_rank(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


async def test_every_failure_and_state_change_is_kept_and_the_last_runs_as_they_were(
    store_factory: Backend,
) -> None:
    store = await store_factory()
    hub = ResultHub()
    # 3,000 runs a minute apart; a failure every 250th run, each ended by an ok run.
    count = 3 * RAW_RUNS
    records = [
        run(
            "web",
            Result.fail(f"down {i}") if i % 250 == 100 else Result.ok(f"run {i}"),
            NOW - (count - i) * MIN,
        )
        for i in range(count)
    ]
    for start in range(0, count, 500):
        await write(store, hub, records[start : start + 500])
    before = (await store.stats(["web"], NOW))["web"]

    await store.prune(before=NOW - 30 * DAY, keep_runs=None, now=NOW)

    kept = {r.message for r in await store.runs("web", limit=10 * count)}
    newest = {f"run {i}" for i in range(count - RAW_RUNS, count) if i % 250 != 100}
    failures = {f"down {i}" for i in range(count) if i % 250 == 100}
    changes = {f"run {i}" for i in range(count) if i % 250 == 101}
    assert kept == newest | failures | changes | {"run 0"}  # the first run is a change too
    assert {r.message for r in await store.runs("web", status="fail", limit=count)} == failures
    # Uptime and latency count every run, kept or not.
    after = (await store.stats(["web"], NOW))["web"]
    assert after == before
    hours = 24 * 60 // 1  # minutes in a day
    failed_in_a_day = sum(1 for i in range(count - hours, count) if i % 250 == 100)
    assert before.uptime["24h"] == pytest.approx((hours - failed_in_a_day) / hours, abs=1e-3)


async def test_the_run_a_job_went_down_or_recovered_with_is_kept(
    store_factory: Backend,
) -> None:
    store = await store_factory()
    hub = ResultHub()
    hub.track("web", "http-status", "check", failure_threshold=2, success_threshold=3)
    statuses = "o" * 5 + "ff" + "o" * (RAW_RUNS + 50)  # down at the 2nd fail, up at the 3rd ok
    records = [
        run("web", Result.ok(f"ok {i}") if c == "o" else Result.fail(f"fail {i}"), NOW - 5000 + i)
        for i, c in enumerate(statuses)
    ]
    for record in records:  # one run a batch, as a job with interval >= flush_every
        await write(store, hub, [record])
    await store.compact()  # else the newest minute waits in runner_runs_new, not thinned yet
    await store.prune(before=NOW - 30 * DAY, keep_runs=None, now=NOW)
    kept = [r.message for r in await store.runs("web", limit=10 * RAW_RUNS)]
    assert len(kept) == RAW_RUNS + 5
    # The first run; both failures (down with the second); the first ok after
    # them (the state changed to ok) and the third (up again); the last 1,000.
    assert kept[-5:] == ["ok 9", "ok 7", "fail 6", "fail 5", "ok 0"]


async def test_uptime_is_exact_and_latency_within_the_sketch_accuracy(
    store_factory: Backend,
) -> None:
    store = await store_factory()
    hub = ResultHub()
    rng = random.Random(23)
    now = 1_780_002_000.0  # on the hour: every window starts on a minute and an hour
    records = []
    for i in range(6000):
        at = now - 2 * DAY + i * 29.0
        duration = rng.lognormvariate(math.log(40), 0.8)
        result = Result.ok() if rng.random() < 0.97 else Result.fail("500")
        records.append(run("web", result, at, duration))
    for start in range(0, len(records), 700):
        await write(store, hub, records[start : start + 700])

    stats = (await store.stats(["web"], now))["web"]
    for label, seconds in (("1h", HOUR), ("24h", DAY)):
        window = [r for r in records if r.finished_at >= now - seconds]
        ok = sum(r.status is Status.OK for r in window)
        assert stats.uptime[label] == ok / len(window), label
    day = [r.duration_ms for r in records if r.finished_at >= now - DAY and r.status is Status.OK]
    for label, share in (("p50", 0.5), ("p95", 0.95)):
        exact = nearest_rank(day, share)
        got = stats.latency_ms[label]
        assert got is not None
        assert abs(got - exact) <= LATENCY_ACCURACY * exact, (label, got, exact)
        assert got == bucket_value(latency_bucket(exact))  # the very bucket of the exact one


async def test_runs_not_compacted_yet_are_read_and_a_restarted_writer_compacts_them(
    store_factory: Backend,
) -> None:
    # A daemon killed with kill -9 leaves its newest runs in runner_runs_new:
    # readers see them meanwhile, and the next daemon compacts them, losing none.
    store = await store_factory()
    hub = ResultHub()
    records = [run("web", Result.ok(f"{i}"), NOW - 20 + i) for i in range(10)]
    records.append(run("web", Result.fail("500"), NOW - 5))
    await write(store, hub, records)
    reader = await store_factory(create=False)
    assert len(await reader.runs("web")) == 11
    assert (await reader.stats(["web"], NOW))["web"].uptime["1h"] == 10 / 11
    (state,) = await reader.load_states(["web"])
    assert state.last is not None and state.last.message == "500"
    assert (await reader.load_recent(["web"], 3))["web"] == "oof"

    restarted = await store_factory()  # the first one never closed: as after kill -9
    await write(restarted, hub, [run("web", Result.ok("after"), NOW - 1)])  # compacts all
    assert await restarted._fetch("SELECT COUNT(*) FROM runner_runs_new") == [(0,)]
    assert [r.message for r in await restarted.runs("web")][:3] == ["after", "500", "9"]
    assert await restarted.count_runs() == 12
    assert (await restarted.stats(["web"], NOW))["web"].uptime["1h"] == 11 / 12


async def test_a_big_compaction_goes_in_steps_one_with_each_batch(
    store_factory: Backend,
) -> None:
    store = await store_factory()
    store.compact_max_rows = 7
    hub = ResultHub()
    batches = [
        [run(f"job-{j}", Result.ok(), NOW - 900 + 10 * k + j / 10) for j in range(4)]
        for k in range(10)
    ]  # 40 runs over 100 s

    async def left() -> int:
        return int((await store._fetch("SELECT COUNT(*) FROM runner_runs_new"))[0][0])

    await write(store, hub, batches[0])
    assert await left() == 0  # a writer's first batch compacts what was left before
    for batch in batches[1:8]:  # 60 s of runs with the 7th of these
        await write(store, hub, batch)
    # 28 runs of job ids 1-4 in 4 steps: job ranges [0, 2), [2, 4), [4, 6), [6, ...).
    assert await left() == 28 - 7  # the first step: job 1's 7 runs
    await write(store, hub, batches[8])
    assert await left() == 25 - 14  # the next with the next batch: jobs 2 and 3
    stats = await store.stats([f"job-{j}" for j in range(4)], NOW)
    assert {s.uptime["1h"] for s in stats.values()} == {1.0}
    assert await store.compact() == 7 + 4  # job 4's, then the batch after the start
    assert await left() == 0
    await write(store, hub, batches[9])
    assert await store.count_runs() == 40
    hours = await store._fetch("SELECT SUM(runs) FROM runner_hours")
    assert int(hours[0][0]) == 40 - await left()


async def test_two_writers_sharing_a_store_compact_without_losing_or_doubling_a_run(
    store_factory: Backend,
) -> None:
    if store_factory.name == "sqlite":
        pytest.skip("one daemon writes a SQLite history; PostgreSQL is shared by a cluster")
    a, b = await store_factory(), await store_factory()
    hubs = {"a": ResultHub(), "b": ResultHub()}

    async def member(store: object, name: str) -> None:
        for k in range(40):  # each batch spans 5 s: a compaction every dozen batches
            records = [
                replace(run(f"{name}-{j}", Result.ok(), NOW - 400 + k * 5 + j / 10), member=name)
                for j in range(50)
            ]
            await write(store, hubs[name], records)  # type: ignore[arg-type]

    await asyncio.gather(member(a, "a"), member(b, "b"))
    await a.compact()
    assert await a.count_runs() == 2 * 40 * 50
    stats = await a.stats([f"{m}-{j}" for m in "ab" for j in range(50)], NOW)
    assert {s.uptime["1h"] for s in stats.values()} == {1.0}
    hours = await a._fetch("SELECT SUM(runs) FROM runner_hours")
    assert int(hours[0][0]) == 2 * 40 * 50


# --------------------------------------------------------------------------- migration

#: A schema 5 history: ``jobs`` jobs with runs every 150 s each up to ``end``,
#: 2 % failed, 1 % in a maintenance window, durations 5-404 ms; built by the
#: database itself. ``g`` holds (x: the run's number, id: the job's, t: its finish).
RUNS_5 = (
    "INSERT INTO runner_runs (job_id, status, message, fields, started_at, finished_at, "
    "duration_ms, attempts, maintenance) "
    "SELECT g.id, CASE WHEN (g.x * 7 + g.id) % 50 = 0 THEN 'fail' ELSE 'ok' END, "
    "CASE WHEN (g.x * 7 + g.id) % 50 = 0 THEN 'HTTP 503' END, '{{\"status_code\":200}}', "
    "g.t - 0.05, g.t, 5.0 + (g.x * 13 + g.id) % 400, 1, "
    "CASE WHEN g.x % 97 = 5 THEN 'deploy' END FROM ({numbered}) AS g"
)


def schema5_sqlite(path: str, jobs: int, per_job: int, end: float) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN")
        for step in MIGRATIONS[:5]:
            for statement in step:
                conn.execute(
                    statement.format(
                        serial="INTEGER",
                        bigserial="INTEGER",
                        hour="CAST(finished_at / 3600 AS INTEGER)",
                    )
                )
        conn.executemany(
            "INSERT INTO runner_jobs (name, plugin, state, count_ok) VALUES (?, 'sleep', 'ok', ?)",
            [(f"job-{i}", per_job) for i in range(jobs)],
        )
        conn.execute(
            "WITH RECURSIVE k(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM k WHERE x < ? - 1) "
            + RUNS_5.format(
                numbered="SELECT k.x AS x, j.id AS id, ? - (? - k.x) * 150.0 + j.id * 0.01 AS t "
                "FROM k CROSS JOIN runner_jobs j"
            ),
            (per_job, end, per_job),
        )
        conn.execute(
            "INSERT INTO runner_hours (job_id, hour, runs, ok) SELECT job_id, "
            "CAST(finished_at / 3600 AS INTEGER), COUNT(*), "
            "SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END) FROM runner_runs "
            "WHERE maintenance IS NULL GROUP BY 1, 2"
        )
        conn.execute("PRAGMA user_version = 5")
        conn.execute("COMMIT")


async def schema5_postgres(url: str, jobs: int, per_job: int, end: float) -> None:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute("CREATE TABLE runner_schema (version INTEGER NOT NULL)")
            await conn.execute("INSERT INTO runner_schema VALUES (5)")
            for step in MIGRATIONS[:5]:
                for statement in step:
                    await conn.execute(
                        statement.format(
                            serial="SERIAL",
                            bigserial="BIGSERIAL",
                            hour="CAST(floor(finished_at / 3600) AS BIGINT)",
                        )
                    )
            await conn.execute(
                "INSERT INTO runner_jobs (name, plugin, state, count_ok) "
                "SELECT 'job-' || i, 'sleep', 'ok', $2 FROM generate_series(0, $1 - 1) AS i",
                jobs,
                per_job,
            )
            await conn.execute(
                RUNS_5.format(
                    numbered="SELECT x, j.id AS id, $1::float8 - ($2 - x) * 150.0 + j.id * 0.01 "
                    "AS t FROM generate_series(0, $2 - 1) AS x CROSS JOIN runner_jobs j"
                ),
                end,
                per_job,
            )
            await conn.execute(
                "INSERT INTO runner_hours (job_id, hour, runs, ok) SELECT job_id, "
                "CAST(floor(finished_at / 3600) AS BIGINT), COUNT(*), "
                "SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END) FROM runner_runs "
                "WHERE maintenance IS NULL GROUP BY 1, 2"
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


#: The run columns as schema 5 has them (no location yet: schema 6's).
SCHEMA_5_COLUMNS = RUN_COLUMNS.replace("location", "NULL AS location")

#: Per job: runs, their finishes and durations summed, failures, maintenance runs.
FINGERPRINT = (
    "SELECT job_id, COUNT(*), SUM(CAST(finished_at * 100 AS BIGINT)), SUM(duration_ms), "
    "SUM(CASE WHEN status = 'ok' THEN 0 ELSE 1 END), COUNT(maintenance) "
    "FROM runner_runs GROUP BY job_id ORDER BY job_id"
)


async def raw_fetch(backend: Backend, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (``?`` placeholders) read straight from the file or database."""
    if backend.name == "sqlite":

        def read() -> list[tuple[Any, ...]]:
            with closing(sqlite3.connect(backend.location)) as conn:
                return [tuple(row) for row in conn.execute(sql, params)]

        return await asyncio.to_thread(read)
    numbered = iter(range(1, 100))
    conn = await asyncpg.connect(backend.location)
    try:
        rows = await conn.fetch(re.sub(r"\?", lambda _: f"${next(numbered)}", sql), *params)
    finally:
        await conn.close()
    return [tuple(row) for row in rows]


@pytest.mark.parametrize(
    "runs",
    [
        pytest.param(1_000_000, id="1M"),
        pytest.param(10_000_000, id="10M", marks=pytest.mark.slow),
    ],
)
async def test_a_schema_5_history_is_migrated_keeping_every_run_and_what_status_says(
    store_factory: Backend, runs: int
) -> None:
    jobs = 1000
    per_job = runs // jobs
    # On the hour (windows on whole minutes, the sketch's on whole hours), and the
    # next one: the migration counts minutes from its own clock less 25 h, which
    # must reach back past now - 24 h. Now floored to the hour read fewer runs in
    # 24 h when the migration ran after the next hour began (CI, at 01:59:59).
    now = float((int(time.time()) // 3600 + 1) * 3600)
    end = now - 10 * MIN
    if store_factory.name == "sqlite":
        await asyncio.to_thread(schema5_sqlite, store_factory.location, jobs, per_job, end)
    else:
        await schema5_postgres(store_factory.location, jobs, per_job, end)
    # What schema 5 holds, read with its own tables, before the migration.
    before = await raw_fetch(store_factory, FINGERPRINT)
    names = [f"job-{i}" for i in (0, 1, 499, 999)]
    runs_before: dict[str, list[RunRecord]] = {}
    exact: dict[str, dict[str, float]] = {}
    for name in names:
        rows = await raw_fetch(
            store_factory,
            f"SELECT {SCHEMA_5_COLUMNS} FROM runner_runs r JOIN runner_jobs j ON j.id = r.job_id "
            "WHERE j.name = ? ORDER BY r.finished_at DESC",
            name,
        )
        stored = runs_before[name] = [record_from_row(name, "sleep", row) for row in rows]
        exact[name] = {}
        for label, seconds in UPTIME_WINDOWS.items():
            if seconds <= DAY:  # the runs themselves
                window = [
                    r for r in stored if r.finished_at >= now - seconds and r.maintenance is None
                ]
                exact[name][label] = sum(r.status is Status.OK for r in window) / len(window)
            else:  # schema 5's hourly counts, whole hours as before
                ((runs_in, ok_in),) = await raw_fetch(
                    store_factory,
                    "SELECT SUM(h.runs), SUM(h.ok) FROM runner_hours h JOIN runner_jobs j "
                    "ON j.id = h.job_id WHERE j.name = ? AND h.hour >= ?",
                    name,
                    int((now - seconds) // HOUR),
                )
                exact[name][label] = int(ok_in) / int(runs_in)
        ok_day = [
            r.duration_ms for r in stored if r.finished_at >= now - DAY and r.status is Status.OK
        ]
        exact[name]["p50"] = nearest_rank(ok_day, 0.5)
        exact[name]["p95"] = nearest_rank(ok_day, 0.95)
    assert len(before) == jobs and sum(row[1] for row in before) == runs

    started = time.perf_counter()
    store = await store_factory()
    took = time.perf_counter() - started
    assert await store_factory.schema_versions() == [SCHEMA_VERSION]

    assert await raw_fetch(store_factory, FINGERPRINT) == before
    assert await store.count_runs() == runs
    for name in names:
        after = await store.runs(name, limit=per_job)
        assert [r.to_json() for r in after] == [r.to_json() for r in runs_before[name]]
    new_stats = await store.stats(names, now)
    for name in names:
        stats = new_stats[name]
        assert dict(stats.uptime) == {label: exact[name][label] for label in UPTIME_WINDOWS}
        for label in ("p50", "p95"):
            got = stats.latency_ms[label]
            assert got is not None
            assert abs(got - exact[name][label]) <= LATENCY_ACCURACY * exact[name][label]
    # A daemon writes on after the migration: a failure, then an ok run.
    hub = ResultHub()
    hub.seed(await store.load_states(["job-0"]))
    newer: list[RunRecord] = [
        run("job-0", Result.fail("after"), now - 2, plugin="sleep"),
        run("job-0", Result.ok("again"), now - 1, plugin="sleep"),
    ]
    await write(store, hub, newer)
    assert [r.message for r in await store.runs("job-0", limit=2)] == ["again", "after"]
    print(f"migrated {runs:,} runs in {took:.1f} s")


async def test_a_reader_of_a_history_not_migrated_yet_says_to_restart_the_daemon(
    store_factory: Backend,
) -> None:
    # runner status of an upgraded runner, the daemon still the old one.
    await store_factory.create_version_3()
    with pytest.raises(HistoryError) as raised:
        await store_factory(create=False)
    assert f"schema version 3, older than this runner reads ({SCHEMA_VERSION})" in str(raised.value)
    assert "Restart it" in str(raised.value)
    assert await store_factory.schema_versions() == [3]  # nothing migrated by a reader

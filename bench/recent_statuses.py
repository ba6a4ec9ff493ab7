"""What reading the jobs' last statuses back at start costs (issue 20, down_when / up_when).

    .venv/bin/python bench/recent_statuses.py [--jobs 1000] [--runs 1000] [--path FILE]
        [--url postgresql://...]

A daemon whose jobs count in a window (``down_when``, ``up_when``) reads each
such job's last N statuses back from ``runner_runs`` at start, so a window
half full at a stop is half full after (``HistoryStore.load_recent``). This
fills an SQLite history with --jobs x --runs runs (kept in --path, reused if
it exists), or with --url an empty PostgreSQL database (filled with COPY,
left filled), then times, side by side:

- ``load_recent``: the statement the daemon runs (the store's
  ``recent_runs_sql``): on SQLite an index seek per job to its N-th newest
  run and a range scan from there, on PostgreSQL a LATERAL join;
- ``ROW_NUMBER()``: the textbook form, ``ROW_NUMBER() OVER (PARTITION BY
  job_id ORDER BY finished_at DESC)`` over every run, filtered to N;
- ``load_states``: what every start already reads (the stored states), for scale.

for N = 5, 10 and 100 (the largest window a rule may have). Medians of three.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from runner.history.postgres import PostgresStore
from runner.history.sqlite import SQLiteStore
from runner.history.store import HistoryStore

ROW_NUMBER = (
    "SELECT j.name, r.status FROM (SELECT job_id, status, finished_at, ROW_NUMBER() OVER "
    "(PARTITION BY job_id ORDER BY finished_at DESC) AS n FROM runner_runs) r "
    "JOIN runner_jobs j ON j.id = r.job_id WHERE r.n <= ? ORDER BY r.job_id, r.finished_at"
)


def history(jobs: int, runs: int) -> Any:
    """The rows of ``jobs`` jobs (ids 1..jobs) with ``runs`` runs each, 80% ok, 30 s apart."""
    rng = random.Random(1)
    for k in range(runs):
        for job_id in range(1, jobs + 1):
            at = 1.7e9 + k * 30 + job_id * 0.001
            status = "ok" if rng.random() < 0.8 else "fail"
            yield (job_id, status, at, at + 0.01, 10.0, 1)


async def fill_postgresql(url: str, jobs: int, runs: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        if await conn.fetchval("SELECT COUNT(*) FROM runner_jobs"):
            return
        await conn.executemany(
            "INSERT INTO runner_jobs (id, name, plugin, kind) VALUES ($1, $2, 'sleep', 'check')",
            [(i, f"job-{i - 1}") for i in range(1, jobs + 1)],
        )
        await conn.copy_records_to_table(
            "runner_runs_kept",  # schema 6: the kept runs (runner_runs is a view)
            records=history(jobs, runs),
            columns=["job_id", "status", "started_at", "finished_at", "duration_ms", "attempts"],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def fill_sqlite(path: Path, jobs: int, runs: int) -> None:
    store = SQLiteStore(path)
    await store.open(create=True)
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO runner_jobs (id, name, plugin, kind) VALUES (?, ?, 'sleep', 'check')",
            [(i, f"job-{i - 1}") for i in range(1, jobs + 1)],
        )
        conn.executemany(
            "INSERT INTO runner_runs_kept (job_id, status, started_at, finished_at, duration_ms, "
            "attempts) VALUES (?, ?, ?, ?, ?, ?)",
            history(jobs, runs),
        )
        conn.execute("ANALYZE")
    conn.close()


async def median_ms(work: Callable[[], Awaitable[Any]], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await work()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


async def main(args: argparse.Namespace, filled: bool) -> None:
    store: HistoryStore
    if args.url:
        store = PostgresStore(args.url)
        await store.open(create=True)
        await fill_postgresql(args.url, args.jobs, args.runs)
        engine = "PostgreSQL " + str((await store._fetch("SHOW server_version"))[0][0])
    else:
        if not filled:
            start = time.perf_counter()
            await fill_sqlite(Path(args.path), args.jobs, args.runs)
            print(f"filled {args.path} in {time.perf_counter() - start:.0f} s")
        store = SQLiteStore(args.path)
        await store.open(create=True)
        engine = f"SQLite {sqlite3.sqlite_version}"
    try:
        names = list(await store.job_ids())
        total = (await store._fetch("SELECT COUNT(*) FROM runner_runs"))[0][0]
        print(f"{engine}: {len(names):,} jobs, {total:,} runs\n")
        print("| N | load_recent | ROW_NUMBER() | load_states |")
        print("|---|---|---|---|")
        states = await median_ms(store.load_states)
        numbered_sql = store.sql(ROW_NUMBER)
        for n in (5, 10, 100):
            recent = await median_ms(lambda n=n: store.load_recent(names, n))  # type: ignore[misc]
            numbered = await median_ms(lambda n=n: store._fetch(numbered_sql, n))  # type: ignore[misc]
            print(f"| {n} | {recent:.0f} ms | {numbered:.0f} ms | {states:.0f} ms |")
    finally:
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1000, help="runs per job")
    parser.add_argument("--path", default="/tmp/runner-bench-recent.sqlite3")
    parser.add_argument("--url", default=None, help="an empty PostgreSQL database instead")
    arguments = parser.parse_args()
    asyncio.run(main(arguments, Path(arguments.path).exists()))

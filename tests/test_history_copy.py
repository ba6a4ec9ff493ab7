"""``runner copy-history``: a daemon's SQLite history copied into the
PostgreSQL a cluster shares (a real PostgreSQL server on 127.0.0.1), with
every run, state and alert record, and read back as the daemon reads it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from helpers import run_cli
from runner.history.postgres import PostgresStore
from runner.history.sqlite import SQLiteStore
from runner.model import RunRecord, Sent
from runner.plugin import Result
from runner.results import ResultHub

NOW = time.time()


def record(job: str, result: Result, finished_at: float, **extra: object) -> RunRecord:
    made = RunRecord.of(job, "http-status", result, started_at=finished_at - 0.01, duration_ms=10.0)
    return replace(made, **extra)  # type: ignore[arg-type]


async def fill(path: Path, runs: int) -> list[RunRecord]:
    """A SQLite history as the daemon leaves it: runs, states, an alert record."""
    store = SQLiteStore(path)
    await store.open(create=True)
    hub = ResultHub()
    records = []
    for i in range(runs):
        at = NOW - (runs - i) * 60
        if i % 7 == 3:
            made = record("web", Result.fail("status 503", status_code=503), at, attempts=2)
        elif i % 11 == 5:
            made = record("web", Result.ok(), at, maintenance="deploy")
        else:
            made = record("web", Result.ok(status_code=200), at, member="a")
        records.append(made)
        records.append(record("api", Result.error("refused"), at + 1))
    for made in records:
        hub.publish(made)
    # Written as the daemon does, in batches with the states after them.
    for start in range(0, len(records), 500):
        await store.write(records[start : start + 500], hub.states.values())
    await store.record_alert("api", "ops", Sent("down", NOW - 3600, NOW - 3500))
    await store.close()
    return records


def test_a_sqlite_history_is_copied_into_postgresql_whole(
    tmp_path: Path, postgres_url: str
) -> None:
    sqlite = tmp_path / "site.sqlite3"
    records = asyncio.run(fill(sqlite, 3000))
    config = tmp_path / "site.yaml"
    config.write_text(
        f"history: {{path: '{sqlite}'}}\n"
        "jobs:\n"
        "  - {name: web, plugin: sleep, options: {seconds: 0}}\n"
        "  - {name: api, plugin: sleep, options: {seconds: 0}}\n"
    )
    result = run_cli("copy-history", str(config), "--to", postgres_url)
    assert result.returncode == 0, result.stderr
    assert "copied 6,000 runs of 2 jobs and 1 alert records" in result.stdout

    async def both() -> tuple[list[list[RunRecord]], list[list[RunRecord]], list[object]]:
        out: list[object] = []
        old, new = SQLiteStore(sqlite), PostgresStore(postgres_url)
        read: list[list[list[RunRecord]]] = [[], []]
        for i, store in enumerate((old, new)):
            await store.open(create=False)
            for job in ("web", "api"):
                read[i].append(await store.runs(job, limit=10_000))
            states = {s.job: s for s in await store.load_states()}
            out.append(
                (
                    {k: (s.state, s.since, dict(s.counts), s.down) for k, s in states.items()},
                    await store.stats(["web", "api"], NOW),
                    await store.load_alerts(),
                )
            )
            await store.close()
        return read[0], read[1], out

    old_runs, new_runs, (old_view, new_view) = asyncio.run(both())
    assert [len(r) for r in new_runs] == [3000, 3000]
    assert new_runs == old_runs  # every field of every run, in the same order
    assert {r.member for r in new_runs[0]} == {"a", None}
    assert {r.maintenance for r in new_runs[0]} == {"deploy", None}
    # States, uptime and latency (from the runs and the hourly counts), the ledger.
    assert new_view == old_view
    assert len(records) == 6000

    # Copying again would store every run twice: refused, nothing written.
    again = run_cli("copy-history", str(config), "--to", postgres_url)
    assert again.returncode == 2
    assert "already has runs of 2 of these jobs (api, web)" in again.stderr


def test_copying_a_history_onto_itself_is_refused(tmp_path: Path) -> None:
    sqlite = tmp_path / "site.sqlite3"
    asyncio.run(fill(sqlite, 3))
    config = tmp_path / "site.yaml"
    config.write_text(
        f"history: {{path: '{sqlite}'}}\njobs:\n  - {{name: web, plugin: sleep, options: {{}}}}\n"
    )
    result = run_cli("copy-history", str(config), "--to", str(sqlite))
    assert result.returncode == 2
    assert "is the history" in result.stderr

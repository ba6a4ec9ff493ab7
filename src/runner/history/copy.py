"""Copying a history into another store: one daemon's SQLite history into the
PostgreSQL a cluster shares (``runner copy-history``).

Every run is copied as it was stored (status, message, fields, times,
attempts, maintenance window, member, location), in the order it was stored, in
batches; the hourly counts are rebuilt from the runs as the daemon builds
them; then each job's state (so "failing since 03:12" carries over) and the
alert ledger (so an incident already told is not told again).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runner.history.store import RUN_COLUMNS, HistoryError, HistoryStore, record_from_row

__all__ = ["CopyCounts", "copy_history"]

#: Runs read and written per transaction.
BATCH = 5000


@dataclass
class CopyCounts:
    runs: int = 0
    jobs: int = 0
    alerts: int = 0


async def copy_history(
    source: HistoryStore,
    target: HistoryStore,
    *,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> CopyCounts:
    """Copy every run, job state and ledger entry of ``source`` into ``target``.

    Both are opened here (``target`` created or migrated as the daemon
    would) and closed after. Raises :class:`HistoryError` when ``target``
    already holds runs of a job ``source`` has: copying again would store
    them twice.
    """
    counts = CopyCounts()
    await source.open(create=False)
    try:
        await target.open(create=True)
        try:
            states = await source.load_states()
            names = [s.job for s in states]
            stored = {s.job for s in await target.load_states(names) if s.runs or s.last}
            if stored:
                shown = ", ".join(sorted(stored)[:5]) + (" ..." if len(stored) > 5 else "")
                raise HistoryError(
                    f"{target.where} already has runs of {len(stored)} of these jobs ({shown}); "
                    "copying would store them twice"
                )
            columns = ", ".join(f"r.{c}" for c in RUN_COLUMNS.split(", "))
            sql = source.sql(
                f"SELECT r.id, j.name, j.plugin, {columns} FROM runner_runs r "
                "JOIN runner_jobs j ON j.id = r.job_id WHERE r.id > ? ORDER BY r.id LIMIT ?"
            )
            last = 0
            while True:
                rows = await source._fetch(sql, last, batch)
                if not rows:
                    break
                last = int(rows[-1][0])
                records = [record_from_row(row[1], row[2], row[3:]) for row in rows]
                await target.write(records, [])
                counts.runs += len(records)
                if progress is not None:
                    progress(counts.runs)
            await target.write([], states)
            counts.jobs = len(states)
            for (job, notifier), sent in (await source.load_alerts()).items():
                await target.record_alert(job, notifier, sent)
                counts.alerts += 1
        finally:
            await target.close()
    finally:
        await source.close()
    return counts

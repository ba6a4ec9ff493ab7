"""Copying a history into another store: one daemon's SQLite history into the
PostgreSQL a cluster shares (``runner copy-history``).

Each job's state first (so "failing since 03:12" carries over); then every
kept run as it was stored (status, message, fields, times, attempts,
maintenance window, member, location, whether it is notable), in the order it was
stored, in batches; the counts by minute and hour and the latency sketch as
they are (they count runs no longer kept one by one); the runs not
compacted yet (a daemon killed with ``kill -9``) as the daemon writes them,
so they are counted too; and the alert ledger (so an incident already told
is not told again).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runner.history.store import (
    COUNT_TABLES,
    RUN_COLUMN_TYPES,
    RUN_COLUMNS,
    HistoryError,
    HistoryStore,
    record_from_row,
)

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
            await target.write([], states)  # the jobs, and the target's ids for them
            counts.jobs = len(states)
            source_ids, target_ids = await source.job_ids(), await target.job_ids()
            to_target = {job_id: target_ids[name] for name, job_id in source_ids.items()}
            kept = source.sql(
                f"SELECT id, job_id, {RUN_COLUMNS}, notable FROM runner_runs_kept "
                "WHERE id > ? ORDER BY id LIMIT ?"
            )
            columns = ["job_id", *RUN_COLUMN_TYPES, "notable"]
            last = 0
            while rows := await source._fetch(kept, last, batch):
                last = int(rows[-1][0])
                await target._insert_rows(
                    "runner_runs_kept", columns, [(to_target[r[1]], *r[2:]) for r in rows]
                )
                counts.runs += len(rows)
                if progress is not None:
                    progress(counts.runs)
            for table, (count_columns, _) in COUNT_TABLES.items():
                for job_id in source_ids.values():
                    rows = await source._fetch(
                        source.sql(f"SELECT {count_columns} FROM {table} WHERE job_id = ?"), job_id
                    )
                    if rows:
                        await target._insert_rows(
                            table,
                            count_columns.split(", "),
                            [(to_target[r[0]], *r[1:]) for r in rows],
                        )
            plugins = {s.job: s.plugin for s in states}
            by_id = {job_id: name for name, job_id in source_ids.items()}
            newest = source.sql(
                f"SELECT id, job_id, {RUN_COLUMNS} FROM runner_runs_new "
                "WHERE id > ? ORDER BY id LIMIT ?"
            )
            last = 0
            while rows := await source._fetch(newest, last, batch):
                last = int(rows[-1][0])
                records = [record_from_row(by_id[r[1]], plugins[by_id[r[1]]], r[2:]) for r in rows]
                await target.write(records, [])
                counts.runs += len(records)
                if progress is not None:
                    progress(counts.runs)
            for (job, notifier), sent in (await source.load_alerts()).items():
                await target.record_alert(job, notifier, sent)
                counts.alerts += 1
        finally:
            await target.close()
    finally:
        await source.close()
    return counts

"""The result sink that writes history without ever slowing a check.

``submit`` (on the event loop, for every result) only appends to a bounded
queue. A writer task takes the queue every ``flush_every`` (or sooner when a
batch is full) and writes it as one transaction, off the event loop. When
the store fails (a full disk, a read-only file, PostgreSQL gone) the batch
stays queued and is retried with a back-off; the failure is logged once per
episode (``history.write_failed``), not per record, and the recovery once
(``history.write_resumed``, with how many records had to be dropped while
the queue was full). A retention task deletes old runs in small steps.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack, suppress
from dataclasses import replace
from typing import Any

from runner.history.opening import open_store
from runner.history.store import HistoryError, HistoryStore
from runner.log import flush_lines, get_logger
from runner.model import JobState, RunRecord
from runner.tasks import cancel_and_wait

#: Records held while the store cannot take them; past this the oldest are dropped.
MAX_QUEUE = 200_000
#: A batch is written as soon as this many records wait (else every flush_every).
BATCH_SIZE = 10_000
#: Retry back-off while the store fails: from flush_every, doubling up to this.
MAX_RETRY_DELAY = 30.0
#: At a clean stop, how long the last flush may take before what is left is given up
#: (with the 5 s job grace, inside the shipped units' TimeoutStopSec=15s).
FINAL_FLUSH_TIMEOUT = 5.0
#: Retention: first pass this long after start, then one pass every RETENTION_EVERY.
RETENTION_FIRST = 10.0
RETENTION_EVERY = 300.0
#: A job's run count is checked against keep_runs again after this share of it was added.
KEEP_RUNS_SLACK = 0.1


class HistorySink:
    """Queues every record and writes batches to a :class:`HistoryStore`.

    Attributes:
        written: records stored since start.
        dropped: records given up (queue full while the store failed, or left
            at a stop the store could not take).
        longest_write_s: the longest single batch write, for benchmarks.
    """

    def __init__(
        self,
        store: HistoryStore,
        *,
        flush_every: float = 1.0,
        keep: float | None = 30 * 86400.0,
        keep_runs: int | None = None,
        max_queue: int = MAX_QUEUE,
        retention_first: float = RETENTION_FIRST,
        retention_every: float = RETENTION_EVERY,
    ) -> None:
        self.store = store
        self.flush_every = flush_every
        self.keep = keep
        self.keep_runs = keep_runs
        self.retention_first = retention_first
        self.retention_every = retention_every
        self._queue: deque[RunRecord] = deque(maxlen=max_queue)
        self._latest: dict[str, JobState] = {}
        #: Set when a record arrives in an empty queue, and when a batch is full.
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        #: The writer's flush under way: a stop lets it finish rather than cut it.
        self._flushing: asyncio.Future[bool] | None = None
        self._opened = False
        self._failing_since: float | None = None
        self._dropped_in_episode = 0
        #: Per job: its run count when last stored, and when keep_runs was last checked.
        self._runs_seen: dict[str, int] = {}
        self._runs_checked: dict[str, int] = {}
        self.written = 0
        self.dropped = 0
        self.longest_write_s = 0.0
        self._log = get_logger().bind(history=store.where)

    @classmethod
    def from_config(cls, config: Any) -> HistorySink | None:
        """The sink a config asks for, or None with ``history: {enabled: false}``."""
        spec = config.history
        if not spec.enabled:
            return None
        return cls(
            open_store(spec, config.path),
            flush_every=spec.flush_every,
            keep=spec.keep,
            keep_runs=spec.keep_runs,
            retention_first=RETENTION_FIRST,
            retention_every=RETENTION_EVERY,
        )

    # ---------------------------------------------------------------- lifetime

    async def start(self, exit_stack: AsyncExitStack) -> None:
        """Open the store (a failure is logged, and retried by the writer) and
        start the writer and retention tasks; their end is pushed on the stack."""
        exit_stack.push_async_callback(self.close)
        await self._try_open()
        self._tasks = [
            asyncio.create_task(self._writer(), name="history:writer"),
            asyncio.create_task(self._retention(), name="history:retention"),
        ]

    async def _try_open(self) -> bool:
        if self._opened:
            return True
        try:
            await self.store.open(create=True)
        except Exception as exc:
            self._episode_failed(exc, opening=True)
            return False
        self._opened = True
        self._log.info("history.opened")
        return True

    async def load_states(
        self, recent: Mapping[str, int] | None = None, jobs: Iterable[str] | None = None
    ) -> list[JobState]:
        """The jobs' states as stored (all, or those of ``jobs``; empty if the
        store cannot be read).

        ``recent``: for these jobs, the statuses of their last so many runs too
        (:attr:`JobState.recent_codes`), which a ``down_when`` or ``up_when``
        window counts in: a window half full at a stop is half full after.
        """
        if not self._opened:
            return []
        try:
            states = await self.store.load_states(jobs)
            if not recent:
                return states
        except Exception as exc:
            self._log.error("history.read_failed", error=_describe(exc))
            return []
        try:
            codes = await self.store.load_recent(recent, max(recent.values()))
        except Exception as exc:  # the states still hold: windows start empty
            self._log.error("history.read_failed", error=_describe(exc))
            return states
        return [replace(s, recent_codes=codes[s.job]) if s.job in codes else s for s in states]

    async def close(self) -> None:
        """Stop the tasks, write everything still queued (bounded), close the store."""
        await cancel_and_wait(self._tasks)
        self._tasks = []
        try:
            async with asyncio.timeout(FINAL_FLUSH_TIMEOUT):
                if self._flushing is not None:
                    # Cut mid-transaction, a batch would be lost (PostgreSQL
                    # rolls it back) or written twice (SQLite's thread goes on).
                    with suppress(Exception):
                        await self._flushing
                if self._queue or self._latest:
                    await self._try_open() and await self.flush()
        except TimeoutError:
            pass
        if self._queue:
            self.dropped += len(self._queue)
            self._log.error(
                "history.lost",
                records=len(self._queue),
                hint="the store could not take the last results before the stop",
            )
            self._queue.clear()
        with suppress(Exception):
            await self.store.close()

    @property
    def opened(self) -> bool:
        return self._opened

    @property
    def queued(self) -> int:
        """Records waiting to be written."""
        return len(self._queue)

    @property
    def lag(self) -> float:
        """Seconds since the oldest record still waiting finished (0 with none)."""
        queue = self._queue
        return max(0.0, time.time() - queue[0].finished_at) if queue else 0.0

    # ---------------------------------------------------------------- results

    def submit(self, record: RunRecord, state: JobState) -> None:
        queue = self._queue
        if len(queue) == queue.maxlen:
            self.dropped += 1
            self._dropped_in_episode += 1
        queue.append(record)
        self._latest[record.job] = state
        size = len(queue)
        if size == 1:
            self._wake.set()
        elif size >= BATCH_SIZE:
            self._full.set()

    async def flush(self) -> bool:
        """Write what is queued now as one batch. Returns False if the store failed
        (the records stay queued)."""
        if not self._queue and not self._latest:
            return True
        # The result lines held (runner.log.hold_lines) go out first: history
        # never holds a run whose line a kill -9 could still lose.
        flush_lines()
        batch = list(self._queue)
        self._queue.clear()
        states, self._latest = self._latest, {}
        started = time.perf_counter()
        try:
            await self.store.write(batch, states.values())
        except Exception as exc:
            # Back in front of what came meanwhile; past the bound the oldest go.
            room = self._room()
            kept = batch[len(batch) - room :] if room < len(batch) else batch
            self._queue.extendleft(reversed(kept))
            self.dropped += len(batch) - len(kept)
            self._dropped_in_episode += len(batch) - len(kept)
            self._latest = {**states, **self._latest}
            self._episode_failed(exc)
            return False
        self.longest_write_s = max(self.longest_write_s, time.perf_counter() - started)
        self.written += len(batch)
        self._runs_seen.update((job, state.runs) for job, state in states.items())
        if self._failing_since is not None:
            self._log.info(
                "history.write_resumed",
                failed_for_s=round(time.monotonic() - self._failing_since, 3),
                dropped=self._dropped_in_episode,
            )
            self._failing_since = None
            self._dropped_in_episode = 0
        return True

    async def _shielded_flush(self) -> bool:
        self._flushing = asyncio.ensure_future(self.flush())
        try:
            return await asyncio.shield(self._flushing)
        finally:
            if self._flushing.done():
                self._flushing = None

    def _room(self) -> int:
        maxlen = self._queue.maxlen or 0
        return max(0, maxlen - len(self._queue))

    def _episode_failed(self, exc: BaseException, *, opening: bool = False) -> None:
        if self._failing_since is not None:
            return  # already said; counted in the resume event
        self._failing_since = time.monotonic()
        self._dropped_in_episode = 0
        self._log.error(
            "history.unavailable" if opening else "history.write_failed",
            error=_describe(exc),
            error_type=type(exc).__name__,
            queued=len(self._queue),
            hint="checks go on; results are queued and written when the store is back",
        )

    async def _writer(self) -> None:
        # Idle (nothing queued) it sleeps on an event: an idle daemon is not
        # woken every flush_every. Once a record arrives it waits flush_every
        # (less if a batch fills) so that records are written in batches.
        delay = self.flush_every
        ok = True
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            if not ok:
                await asyncio.sleep(delay)  # a failing store is retried with a back-off
            elif len(self._queue) < BATCH_SIZE:
                with suppress(TimeoutError):
                    async with asyncio.timeout(self.flush_every):
                        await self._full.wait()
            self._full.clear()
            ok = await self._try_open() and await self._shielded_flush()
            delay = self.flush_every if ok else min(max(delay, 0.25) * 2, MAX_RETRY_DELAY)

    # ---------------------------------------------------------------- retention

    async def _retention(self) -> None:
        await asyncio.sleep(self.retention_first)
        while True:
            if self._opened and self._failing_since is None:
                try:
                    await self.prune()
                except Exception as exc:
                    self._log.warning("history.prune_failed", error=_describe(exc))
            await asyncio.sleep(self.retention_every)

    async def prune(self, now: float | None = None) -> int:
        """One retention pass over every job, in small steps. Returns rows deleted."""
        if self.keep is None and self.keep_runs is None:
            return 0
        before = (now or time.time()) - (self.keep or float("inf"))
        deleted = 0
        runs_now = self._runs_seen
        ids = await self.store.job_ids()
        for job in ids:
            keep_runs = None
            if self.keep_runs is not None:
                checked = self._runs_checked.get(job)
                seen = runs_now.get(job)
                slack = max(1, int(self.keep_runs * KEEP_RUNS_SLACK))
                if checked is None or (seen is not None and seen - checked >= slack):
                    keep_runs = self.keep_runs
                    self._runs_checked[job] = seen or 0
            deleted += await self.store.prune(
                before=before, keep_runs=keep_runs, jobs=[job], ids=ids
            )
        if self.keep is not None:
            await self.store.prune_hours(before=before)
        if deleted:
            self._log.info("history.pruned", runs=deleted)
        return deleted


def _describe(exc: BaseException) -> str:
    if isinstance(exc, HistoryError):
        return str(exc)
    return f"{exc}" or type(exc).__name__

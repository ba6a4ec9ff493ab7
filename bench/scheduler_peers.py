"""The peers of runner's scheduler for bench/scheduler.py, each run as a process of its own.

    python bench/scheduler_peers.py bare|apscheduler JOBS CAPACITY_SECONDS DUMP

Both run JOBS jobs named ``job-0`` ... every 1 s, each run an ``async def``
that records its start and awaits ``asyncio.sleep(0)`` (what runner's
``sleep`` plugin does with ``seconds: 0``). Job i's phase is runner's own
first-run offset for the name ``job-i`` (CRC-32 of the name over 1 s), so the
three schedulers fire the same jobs at the same moments.

- ``bare``: ``loop.call_at`` + ``create_task`` per run, a reference to the
  task kept until it is done: the least an asyncio scheduler can do.
- ``apscheduler``: APScheduler 3's ``AsyncIOScheduler`` with one
  ``IntervalTrigger(seconds=1)`` job each, its defaults otherwise (coalesce,
  one instance, 1 s misfire grace); its loggers at WARNING, so it logs nothing
  unless something goes wrong.

Starts are recorded the way runner stamps ``started_at``: ``time.time()`` as
the run's coroutine begins, into arrays allocated before the first run (no
object per run, nothing for the garbage collector). Their size (12 bytes a
run, for CAPACITY_SECONDS x JOBS runs) is written first in the dump so the
benchmark can take it off the process's RSS. ``ready`` is printed on stdout
once every job is scheduled; SIGTERM writes DUMP and exits.
"""

from __future__ import annotations

import array
import asyncio
import struct
import sys
import time
import zlib
from collections.abc import Callable, Coroutine
from typing import Any


def phases(jobs: int) -> list[float]:
    """runner.scheduler.first_run_offset for an interval of 1 s and a 1 s spread window."""
    return [zlib.crc32(f"job-{i}".encode()) / 2**32 for i in range(jobs)]


class Starts:
    """Preallocated (job, start) pairs; writes past the capacity are counted, not kept."""

    def __init__(self, capacity: int) -> None:
        self.job = array.array("i", bytes(4 * capacity))
        self.at = array.array("d", bytes(8 * capacity))
        self.capacity = capacity
        self.count = 0

    def dump(self, path: str) -> None:
        kept = min(self.count, self.capacity)
        with open(path, "wb") as out:
            out.write(struct.pack("<qqq", 12 * self.capacity, kept, self.count - kept))
            out.write(self.job[:kept].tobytes())
            out.write(self.at[:kept].tobytes())


def recording_job(starts: Starts) -> Callable[[int], Coroutine[Any, Any, None]]:
    """The job every peer runs: job ``i`` notes when it started in the
    preallocated arrays, then yields once, as runner's ``sleep`` of 0 s does."""
    clock = time.time
    ids, ats, capacity = starts.job, starts.at, starts.capacity

    async def run(i: int) -> None:
        n = starts.count
        if n < capacity:
            ids[n] = i
            ats[n] = clock()
        starts.count = n + 1
        await asyncio.sleep(0)

    return run


def bare(jobs: int, starts: Starts, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    run = recording_job(starts)
    tasks: set[asyncio.Task[None]] = set()

    def fire(i: int, due: float) -> None:
        task = loop.create_task(run(i))
        tasks.add(task)  # a real scheduler must keep a reference to its runs
        task.add_done_callback(tasks.discard)
        loop.call_at(due + 1.0, fire, i, due + 1.0)

    now = loop.time()
    for i, phase in enumerate(phases(jobs)):
        loop.call_at(now + phase, fire, i, now + phase)
    return lambda: None


def apscheduler(jobs: int, starts: Starts, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    import datetime
    import logging

    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    run = recording_job(starts)

    scheduler = AsyncIOScheduler(event_loop=loop)
    base = datetime.datetime.now(datetime.UTC)
    for i, phase in enumerate(phases(jobs)):
        trigger = IntervalTrigger(
            seconds=1, start_date=base + datetime.timedelta(seconds=phase), timezone=datetime.UTC
        )
        scheduler.add_job(run, trigger, args=(i,), id=str(i))
    scheduler.start()
    return lambda: scheduler.shutdown(wait=False)


async def main(kind: str, jobs: int, capacity_seconds: float, dump: str) -> None:
    loop = asyncio.get_running_loop()
    starts = Starts(int(jobs * capacity_seconds))
    stopped = asyncio.Event()
    loop.add_signal_handler(15, stopped.set)  # SIGTERM
    stop = {"bare": bare, "apscheduler": apscheduler}[kind](jobs, starts, loop)
    print("ready", flush=True)
    await stopped.wait()
    stop()
    starts.dump(dump)


if __name__ == "__main__":
    args: list[Any] = sys.argv[1:]
    asyncio.run(main(args[0], int(args[1]), float(args[2]), args[3]))

"""What history costs: the scheduler with history off / SQLite / PostgreSQL, raw
store writes, `runner status` queries on a big history, and retention.

Run (as root, for the PostgreSQL server it starts; about 15 minutes for all
four parts with the defaults, each part can run alone):
  .venv/bin/python bench/history.py [--parts scheduler,write,query,retention,layout]
      [--backends sqlite,postgresql] [--jobs 10000] [--seconds 10] [--rounds 1]
      [--prefill 5000000] [--write-prefill 5000000] [--fill-rows 10000000]
      [--retention-rows 2000000] [--retention-jobs 10000]

Side by side in one process, so the ratios hold on a noisy shared machine.

1. scheduler: N ``sleep`` jobs (seconds: 0) every 1 s, history off, on SQLite
   (a temp file) and on PostgreSQL, each store holding --prefill runs already
   (the steady state of a daemon that has run a while). CPU per 1,000 runs of
   the whole process (event loop and writer thread), and of the PostgreSQL
   server apart; start lateness p50/p99 (measured like bench/scheduler.py);
   garbage-collector pauses. --flush-every and --batch-size try other sink
   settings.
2. write: ``store.write`` of batches of 10,000 runs (10,000 jobs, one run each,
   with their states, as the sink writes them) into an empty store, one with
   the candidate covering index of part 3, and one holding --write-prefill
   runs: rows/s, CPU per 1,000 rows, the longest event-loop stall during a
   batch, bytes written, database size per million runs.
3. query: ``runner status``'s queries on a history of --fill-rows runs
   (1,000 jobs over 30 days), time per statement, the plans, and two
   candidates measured: a covering index and an hourly rollup for uptime.
4. retention: ``HistorySink.prune`` over --retention-rows old runs while
   10,000 runs a second are written: the longest write with and without it,
   rows deleted per second; as the code is, and with job ids read once per
   pass.
5. layout (issue 23; not in the default --parts): the writer's cost of the
   schema 5 layout (every run a row indexed by job and time, hourly counts
   upserted every batch; its store.py, sqlite.py and postgres.py read from
   git at --baseline) and of schema 6 (runs appended to runner_runs_new and
   compacted, compaction included), side by side in one process,
   interleaved trials of --layout-batches batches of --layout-jobs runs,
   each store holding --write-prefill runs before (schema 6 also a day of
   minute counts, hours and latency buckets): CPU per 1,000 rows of the
   process and of the PostgreSQL server, bytes written, batch times, the
   longest compaction step. --layout-compact tries other compaction spans.

The PostgreSQL server is a throwaway one (initdb in a temp dir, run as user
``postgres``) with its default settings: fsync on, synchronous_commit on,
shared_buffers 128 MB. Its CPU is read from /proc (postmaster, its reaped
children and its live children).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import pwd
import re
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

from runner import heap
from runner.builtins.sleep import Sleep, SleepOptions
from runner.history import HistorySink, HistoryStore, SQLiteStore
from runner.history import sink as sink_module
from runner.model import Job, JobState, RunRecord
from runner.plugin import Status
from runner.resources import Resources
from runner.results import ResultHub
from runner.scheduler import Scheduler, first_run_offset
from runner.schedules import Interval

PG_BIN = Path("/usr/lib/postgresql/15/bin")
DAY = 86400.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------- helpers


def cpu() -> float:
    """CPU seconds of this whole process: the event loop and every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def written(pid: int | str = "self") -> int:
    """Bytes a process passed to write() and the like (``wchar`` of /proc/PID/io)."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pct(values: list[float], p: float) -> float:
    """The p-th percentile in ms."""
    return statistics.quantiles(values, n=100)[int(p) - 1] * 1000 if len(values) > 1 else 0.0


class GcPauses:
    """The longest garbage-collector pause, by generation, while installed."""

    def __init__(self) -> None:
        self.longest = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self.total = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            took = time.perf_counter() - self._started
            gen = info["generation"]
            self.longest[gen] = max(self.longest[gen], took)
            self.count[gen] += 1
            self.total += took

    @contextmanager
    def installed(self) -> Iterator[GcPauses]:
        gc.callbacks.append(self)
        try:
            yield self
        finally:
            gc.callbacks.remove(self)


class StallWatch:
    """The longest gap between wake-ups of a task that sleeps 1 ms: how long
    the event loop was kept from running anything else."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.001)
            now = loop.time()
            self.longest = max(self.longest, now - last - 0.001)
            last = now

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick(), name="bench:stall-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def record(job: str, finished_at: float, status: Status = Status.OK) -> RunRecord:
    """A run like a ``sleep`` job's (the plugin's fields included)."""
    return RunRecord(
        job=job,
        plugin="sleep",
        status=status,
        message=None,
        fields={"slept_s": 0.0},
        started_at=finished_at - 0.0001,
        finished_at=finished_at,
        duration_ms=0.1,
    )


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, ready to paste into bench/README.md."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_bytes(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


# --------------------------------------------------------------------- PostgreSQL


class Postgres:
    """A throwaway PostgreSQL server in a temp dir, with default durability
    (fsync and synchronous_commit on). Needs root (initdb runs as postgres)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="runner-bench-pg-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.version = ""

    def start(self) -> None:
        pw = pwd.getpwnam("postgres")
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        data = self.dir / "data"
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(data),
             "-U", "runner", "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
        )  # fmt: skip
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = open(self.dir / "server.log", "wb")  # noqa: SIM115 - the server's lifetime
        self.proc = subprocess.Popen(
            [str(PG_BIN / "postgres"), "-D", str(data), "-k", str(self.dir),
             "-c", "listen_addresses=127.0.0.1", "-p", str(port)],
            user="postgres",
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        self.url = f"postgresql://runner@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"],
                check=False,
            )
            if done.returncode == 0:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: see {self.dir}/server.log")
            time.sleep(0.1)
        out = subprocess.run(
            [str(PG_BIN / "postgres"), "--version"], check=True, capture_output=True, text=True
        )
        self.version = out.stdout.strip()

    def written(self) -> int:
        """Bytes the live server processes passed to write() (WAL, data files)."""
        assert self.proc is not None
        return sum(written(pid) for pid in self._pids())

    def _pids(self) -> list[int]:
        assert self.proc is not None
        pids = [self.proc.pid]
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    with open(f"/proc/{entry.name}/stat") as f:
                        if int(f.read().rpartition(")")[2].split()[1]) == self.proc.pid:
                            pids.append(int(entry.name))
                except OSError:
                    continue
        return pids

    def cpu(self) -> float:
        """CPU seconds of the server: the postmaster with its reaped children
        (exited backends), plus every live child (backends, checkpointer, WAL
        writer, autovacuum)."""
        assert self.proc is not None
        total = 0.0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            pid, ppid = int(entry.name), int(fields[1])
            if pid == self.proc.pid:
                total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
            elif ppid == self.proc.pid:
                total += int(fields[11]) + int(fields[12])
        return total / CLK_TCK

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(2)  # SIGINT: fast shutdown
            self.proc.wait(30)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


class Backends:
    """Fresh stores of each backend under test."""

    def __init__(self, names: list[str], tmp: Path, pg: Postgres | None) -> None:
        self.names = names
        self.tmp = tmp
        self.pg = pg
        self._n = 0

    async def fresh(self, name: str) -> HistoryStore:
        """An empty store (a new SQLite file; PostgreSQL tables dropped)."""
        self._n += 1
        if name == "sqlite":
            return SQLiteStore(self.tmp / f"bench-{self._n}.sqlite3")
        from runner.history.postgres import PostgresStore

        assert self.pg is not None
        store = PostgresStore(self.pg.url)
        await pg_reset(self.pg.url)
        return store

    def server_cpu(self, name: str) -> float:
        return self.pg.cpu() if name == "postgresql" and self.pg is not None else 0.0

    def written(self, name: str) -> int:
        """Bytes written by whoever writes the database: this process (SQLite)
        or the server."""
        if name == "postgresql" and self.pg is not None:
            return self.pg.written()
        return written()


async def pg_reset(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        # Every table and view of either schema.
        await conn.execute("DROP SCHEMA public CASCADE")
        await conn.execute("CREATE SCHEMA public")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def pg_query(url: str, sql: str, *args: Any) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


# --------------------------------------------------------------------- 1. scheduler


#: Set by --gc-freeze.
GC_FREEZE = False


class Counter:
    """Counts finished runs; a sink like any other."""

    def __init__(self) -> None:
        self.count = 0

    async def start(self, exit_stack: AsyncExitStack) -> None:
        pass

    def submit(self, record: RunRecord, state: JobState) -> None:
        self.count += 1


async def scheduler_run(
    n: int,
    seconds: float,
    warmup: float,
    store: HistoryStore | None,
    server_cpu: Callable[[], float],
    flush_every: float = 1.0,
) -> dict[str, Any]:
    """N sleep jobs every 1 s, with history in ``store`` (None: off)."""
    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    names = [f"job-{i}" for i in range(n)]
    offsets = {
        name: first_run_offset(
            Job(name, "sleep", Sleep, SleepOptions(seconds=0), Interval(1.0), 10, 1)
        )
        for name in names
    }
    anchors: dict[str, float] = {}

    class Timed(Sleep):
        async def run(self, ctx):  # type: ignore[no-untyped-def]
            # As bench/scheduler.py: due times are anchor + offset + k * 1 s.
            late = (loop.time() - anchors[ctx.job] - offsets[ctx.job]) % 1.0
            lateness.append(late - 1.0 if late > 0.5 else late)
            return await super().run(ctx)

    jobs = [
        Job(name, "sleep", Timed, SleepOptions(seconds=0), Interval(1.0), 10, 1) for name in names
    ]
    counter = Counter()
    sink: HistorySink | None = None
    times = WriteTimes(store) if store is not None else None
    gc.collect()
    async with AsyncExitStack() as stack:
        sinks: list[Any] = [counter]
        if store is not None:
            # Retention is measured on its own (part 4): keep it out of this window.
            sink = HistorySink(store, flush_every=flush_every, retention_first=1e9)
            await sink.start(stack)
            sinks.append(sink)
        scheduler = Scheduler(Resources(), ResultHub(sinks))
        scheduler.start_all(jobs)
        anchors.update({name: h.started_at for name, h in scheduler.handles.items()})
        await asyncio.sleep(warmup)  # steady phase; the first batch (creating jobs) is written
        if GC_FREEZE:
            gc.collect()
            gc.freeze()  # as `runner serve` does once its jobs have started (cli.py)
            await asyncio.sleep(2)  # the runs that collection delayed are not the window's
        lateness.clear()
        if sink is not None:
            sink.longest_write_s = 0.0
            written0 = sink.written
        pauses = GcPauses()
        with pauses.installed():
            c0, s0, r0, w0 = cpu(), server_cpu(), counter.count, time.perf_counter()
            t0 = time.thread_time()
            await asyncio.sleep(seconds)
            loop_cpu = time.thread_time() - t0
            used, server, runs = cpu() - c0, server_cpu() - s0, counter.count - r0
            wall = time.perf_counter() - w0
        out: dict[str, Any] = {
            "cpu_per_1000": used / runs * 1000,
            "loop_cpu_per_1000": loop_cpu / runs * 1000,
            "server_per_1000": server / runs * 1000,
            "runs_per_s": runs / wall,
            "p50": pct(lateness, 50),
            "p99": pct(lateness, 99),
            "max": max(lateness) * 1000,
            "gc_longest": max(pauses.longest) * 1000,
            "gc_total": pauses.total,
            "gc_per_1000": pauses.total / runs * 1000,
            "gc_full": pauses.count[2] / wall,
        }
        if sink is not None:
            out["written_per_s"] = (sink.written - written0) / wall
            out["longest_write"] = sink.longest_write_s * 1000
            out["backlog"] = len(sink._queue)
            out["dropped"] = sink.dropped
            assert times is not None
            out["failures"] = times.failures
        await scheduler.stop_all()
    gc.unfreeze()
    return out


async def prefill(name: str, store: HistoryStore, backends: Backends, jobs: int, rows: int) -> None:
    """The steady state of a daemon that has run a while: ``rows`` runs of the
    ``jobs`` jobs in the history already, so every job's stretch of the (job,
    time) index has pages of its own and each batch dirties one page per job."""
    await store.open(create=True)
    now = time.time()
    hub = ResultHub()
    await store.write([], [hub.publish(record(f"job-{i}", now - 60)) for i in range(jobs)])
    await fill(name, store, backends, rows, now - 30 * DAY, 30 * DAY - 60, jobs)


async def part_scheduler(args: argparse.Namespace, backends: Backends) -> None:
    there = f", {args.prefill:,} runs in the history before" if args.prefill else ""
    there += f", flush_every {args.flush_every:g} s, batches of up to {sink_module.BATCH_SIZE:,}"
    print(
        f"\n## 1. scheduler: {args.jobs:,} sleep jobs every 1 s, {args.seconds:g} s windows"
        f"{there}\n"
    )
    results: dict[str, list[dict[str, Any]]] = {}
    order = ["off", *backends.names]
    for _ in range(args.rounds):
        for mode in order:
            store = None if mode == "off" else await backends.fresh(mode)
            if store is not None and args.prefill:
                await prefill(mode, store, backends, args.jobs, args.prefill)
            result = await scheduler_run(
                args.jobs,
                args.seconds,
                args.warmup,
                store,
                lambda m=mode: backends.server_cpu(m),
                args.flush_every,
            )
            results.setdefault(mode, []).append(result)
            print(f"  {mode}: {fmt_scheduler(result)}", flush=True)

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode])

    base = med("off", "cpu_per_1000")
    rows = []
    for mode in order:
        server = med(mode, "server_per_1000")
        rows.append(
            [
                "history off" if mode == "off" else f"history on, {mode}",
                f"{med(mode, 'runs_per_s'):,.0f}",
                f"{med(mode, 'cpu_per_1000'):.4f}",
                f"{med(mode, 'cpu_per_1000') / base:.2f}x",
                f"{med(mode, 'loop_cpu_per_1000'):.4f}",
                f"{server:.4f}" if mode == "postgresql" else "-",
                f"{med(mode, 'p50'):.2f} / {med(mode, 'p99'):.2f}",
                f"{med(mode, 'gc_per_1000'):.4f}",
                f"{med(mode, 'gc_full'):.2f}",
                f"{med(mode, 'gc_longest'):.0f}",
                "-" if mode == "off" else f"{med(mode, 'longest_write'):.0f}",
            ]
        )
    print(f"\nmedians of {args.rounds} round(s):\n")
    headers = ["", "runs/s", "CPU s / 1,000 runs (process)", "vs off", "of it event loop",
               "PostgreSQL server CPU s / 1,000", "start lateness p50 / p99 ms",
               "of it GC pauses", "full GCs / s", "longest GC pause ms",
               "longest write ms"]  # fmt: skip
    print(table(headers, rows))


def fmt_scheduler(r: dict[str, Any]) -> str:
    text = (
        f"{r['runs_per_s']:,.0f} runs/s, CPU {r['cpu_per_1000']:.4f} s/1000 "
        f"(loop {r['loop_cpu_per_1000']:.4f}, server {r['server_per_1000']:.4f}), "
        f"late p50 {r['p50']:.2f} p99 {r['p99']:.2f} max {r['max']:.0f} ms, "
        f"GC longest {r['gc_longest']:.0f} ms total {r['gc_total']:.2f} s "
        f"({r['gc_full']:.2f} full collections/s)"
    )
    if "written_per_s" in r:
        text += (
            f"; written {r['written_per_s']:,.0f}/s, longest write {r['longest_write']:.0f} ms, "
            f"backlog {r['backlog']}, dropped {r['dropped']}, failed writes {r['failures']}"
        )
    return text


# --------------------------------------------------------------------- 2. raw writes


def batches(jobs: int, count: int, start: float) -> list[tuple[list[RunRecord], list[JobState]]]:
    """``count`` batches of one run per job, one second apart, with the states
    the hub gives them."""
    hub = ResultHub()
    out = []
    for k in range(count):
        records = [record(f"job-{i}", start + k + i / jobs) for i in range(jobs)]
        states = [hub.publish(r) for r in records]
        out.append((records, states))
    return out


def sqlite_size(path: Path) -> float:
    """The file and its -wal."""
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


async def db_size(name: str, store: HistoryStore, backends: Backends) -> dict[str, float]:
    """Bytes on disk: ``total``; for PostgreSQL also ``runs`` and ``jobs`` (each
    table with its indexes)."""
    if name == "sqlite":
        assert isinstance(store, SQLiteStore)
        await store._fetch("PRAGMA wal_checkpoint(TRUNCATE)")
        return {"total": sqlite_size(store.path)}
    assert backends.pg is not None
    rows = await pg_query(
        backends.pg.url,
        "SELECT pg_total_relation_size('runner_runs_kept') "
        "+ pg_total_relation_size('runner_runs_new'), pg_total_relation_size('runner_jobs')",
    )
    runs, jobs = float(rows[0][0]), float(rows[0][1])
    return {"total": runs + jobs, "runs": runs, "jobs": jobs}


async def part_write(args: argparse.Namespace, backends: Backends) -> None:
    jobs, count = 10_000, args.write_batches
    print(f"\n## 2. store.write: {count} batches of {jobs:,} runs (one per job, with states)\n")
    made = batches(jobs, count + 1, time.time() - count - 10)
    rows = []
    prefill = args.write_prefill
    variants = [
        (name, variant)
        for name in backends.names
        for variant in ("empty", "covering index", *(["prefilled"] if prefill else []))
    ]
    for name, variant in variants:
        label = {
            "empty": name,
            "covering index": f"{name} + covering index",
            "prefilled": f"{name}, {prefill:,} runs there before",
        }[variant]
        store = await backends.fresh(name)
        await store.open(create=True)
        await store.write(*made[0])  # creates the jobs; not timed
        if variant == "covering index":  # what part 3's candidate index would cost the writer
            await store._execute(COVERING)
        if variant == "prefilled":
            # The steady state: every job's stretch of the (job, time) index
            # spans pages of its own, so a batch dirties one page per job.
            start = made[0][0][0].finished_at
            await fill(name, store, backends, prefill, start - 30 * DAY, 30 * DAY - 10, jobs)
        size0 = await db_size(name, store, backends)
        durations: list[float] = []
        watch = StallWatch()
        watch.start()
        gc.collect()
        c0, s0, w0 = cpu(), backends.server_cpu(name), time.perf_counter()
        t0, io0 = time.thread_time(), backends.written(name)
        for records, states in made[1:]:
            started = time.perf_counter()
            await store.write(records, states)
            durations.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)  # let the stall watch tick between batches
        wall = time.perf_counter() - w0 - 0.01 * count
        loop_cpu = time.thread_time() - t0
        used, server = cpu() - c0, backends.server_cpu(name) - s0
        io = backends.written(name) - io0
        await watch.stop()
        n = jobs * count
        size = await db_size(name, store, backends)
        await store.close()
        # What the runs add: the growth since the first batch (the jobs table is
        # there by then; PostgreSQL's grows with every update until vacuumed).
        per_million = (
            (size.get("runs", size["total"]) - size0.get("runs", size0["total"])) / n * 1e6
        )
        median_ms = statistics.median(durations) * 1000
        jobs_table = (
            f" (runner_jobs, 10,000 rows, {count + 1} updates each: {fmt_bytes(size['jobs'])})"
            if "jobs" in size
            else ""
        )
        print(
            f"  {label}: {n / wall:,.0f} rows/s, batch median {median_ms:.0f}"
            f" ms max {max(durations) * 1000:.0f} ms, CPU {used / n * 1000:.4f} s/1000 rows "
            f"(loop thread {loop_cpu / n * 1000:.4f}), server {server / n * 1000:.4f} s/1000, "
            f"longest loop stall {watch.longest * 1000:.1f} ms, {fmt_bytes(per_million)} per "
            f"million runs{jobs_table}, {io / n * 1000 / 2**20:.1f} MiB written per 1,000 rows",
            flush=True,
        )
        rows.append(
            [
                label,
                f"{n / wall:,.0f}",
                f"{statistics.median(durations) * 1000:.0f} / {max(durations) * 1000:.0f}",
                f"{used / n * 1000:.4f}",
                f"{loop_cpu / n * 1000:.4f}",
                f"{server / n * 1000:.4f}" if name == "postgresql" else "-",
                f"{watch.longest * 1000:.1f}",
                f"{io / n * 1000 / 2**20:.1f}",
                fmt_bytes(per_million),
            ]
        )
    print()
    headers = ["store", "rows/s", "batch of 10,000 median / max ms",
               "CPU s / 1,000 rows (process)", "of it event loop", "server CPU s / 1,000 rows",
               "longest event-loop stall ms", "MiB written / 1,000 rows",
               "size per million runs"]  # fmt: skip
    print(table(headers, rows))


# --------------------------------------------------------------------- 3. queries


FILL_JOBS = 1000

# A history like a real one: runs in time order, every job interleaved; 98 % ok.
SQLITE_FILL = """
WITH RECURSIVE k(x) AS (SELECT :lo UNION ALL SELECT x + 1 FROM k WHERE x < :hi - 1)
INSERT INTO {table} (job_id, status, message, fields, started_at, finished_at,
                         duration_ms, attempts{notable})
SELECT job_id, CASE WHEN r < 980 THEN 'ok' WHEN r < 990 THEN 'fail'
                    WHEN r < 995 THEN 'error' ELSE 'timeout' END,
       CASE WHEN r < 980 THEN NULL ELSE 'HTTP 503' END, '{{"status_code":200}}',
       t - d / 1000.0, t, d, 1{notable_value}
FROM (SELECT j.id AS job_id, abs(random()) % 1000 AS r, 20 + abs(random()) % 300 AS d,
             :t0 + k.x * :step + (j.id % :jobs) * :step / :jobs AS t
      FROM k CROSS JOIN runner_jobs AS j WHERE j.id <= :jobs ORDER BY k.x, j.id)
"""

PG_FILL = """
INSERT INTO {table} (job_id, status, message, fields, started_at, finished_at,
                         duration_ms, attempts{notable})
SELECT job_id, CASE WHEN r < 980 THEN 'ok' WHEN r < 990 THEN 'fail'
                    WHEN r < 995 THEN 'error' ELSE 'timeout' END,
       CASE WHEN r < 980 THEN NULL ELSE 'HTTP 503' END, '{{"status_code":200}}',
       t - d / 1000.0, t, d, 1{notable_value}
FROM (SELECT j.id AS job_id, floor(random() * 1000) AS r, 20 + floor(random() * 300) AS d,
             $3::float8 + x * $4::float8 + (j.id % $5) * $4::float8 / $5 AS t
      FROM generate_series($1::bigint, $2::bigint - 1) AS x CROSS JOIN runner_jobs AS j
      WHERE j.id <= $5 ORDER BY x, j.id) AS g
"""


HOURS_FILL = (
    "INSERT INTO runner_hours (job_id, hour, runs, ok) SELECT job_id, {hour}, COUNT(*), "
    "SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END) FROM {table} GROUP BY 1, 2"
)


def runs_table(store: HistoryStore) -> dict[str, str]:
    """Where ``fill`` puts runs: schema 6's runner_runs_kept (with ``notable``), or
    runner_runs for the schema 5 store of part 5."""
    if type(store).__module__.startswith("runner.history"):
        return {
            "table": "runner_runs_kept",
            "notable": ", notable",
            "notable_value": ", CASE WHEN r < 980 THEN 0 ELSE 1 END",
        }
    return {"table": "runner_runs", "notable": "", "notable_value": ""}


async def fill(
    name: str,
    store: HistoryStore,
    backends: Backends,
    rows: int,
    t0: float,
    span: float,
    jobs: int = FILL_JOBS,
) -> float:
    """``rows`` runs of the first ``jobs`` jobs (ids 1 to ``jobs``) evenly over
    [t0, t0 + span), built by the database itself (the index is dropped during
    the fill and built after).
    Returns seconds taken."""
    slots = max(1, rows // jobs)
    step = span / slots
    started = time.perf_counter()
    where = runs_table(store)
    table_name = where["table"]
    chunk = max(1, 1_000_000 // jobs)
    if name == "sqlite":
        path = store.path  # type: ignore[attr-defined] - today's SQLiteStore or schema 5's

        def work() -> None:
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("DROP INDEX IF EXISTS runner_runs_job_time")
            for lo in range(0, slots, chunk):
                hi = min(slots, lo + chunk)
                conn.execute("BEGIN")
                conn.execute(
                    SQLITE_FILL.format(**where),
                    {"lo": lo, "hi": hi, "t0": t0, "step": step, "jobs": jobs},
                )
                conn.execute("COMMIT")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute(
                "CREATE INDEX IF NOT EXISTS runner_runs_job_time "
                f"ON {table_name} (job_id, finished_at)"
            )
            # The hourly counts the writer keeps (schema 3), as its migration fills them.
            conn.execute("DELETE FROM runner_hours")
            conn.execute(
                HOURS_FILL.format(hour="CAST(finished_at / 3600 AS INTEGER)", table=table_name)
            )
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()

        await asyncio.to_thread(work)
    else:
        import asyncpg

        assert backends.pg is not None
        conn = await asyncpg.connect(getattr(store, "url", backends.pg.url))
        try:
            await conn.execute("DROP INDEX IF EXISTS runner_runs_job_time")
            for lo in range(0, slots, chunk):
                await conn.execute(
                    PG_FILL.format(**where), lo, min(slots, lo + chunk), t0, step, jobs
                )
            await conn.execute(
                "CREATE INDEX IF NOT EXISTS runner_runs_job_time "
                f"ON {table_name} (job_id, finished_at)"
            )
            await conn.execute("DELETE FROM runner_hours")
            await conn.execute(
                HOURS_FILL.format(
                    hour="CAST(floor(finished_at / 3600) AS BIGINT)", table=table_name
                )
            )
            # What autovacuum does by itself a while later: statistics and the
            # visibility map (index-only scans need it).
            await conn.execute(f"VACUUM ANALYZE {table_name}")
        finally:
            await conn.close()
    return time.perf_counter() - started


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int = 3) -> tuple[float, float]:
    """First and median-of-``repeat`` wall seconds of ``fn()``."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return times[0], statistics.median(times)


async def explain(name: str, store: HistoryStore, backends: Backends, sql: str) -> str:
    if name == "sqlite":
        rows = await store._fetch("EXPLAIN QUERY PLAN " + sql.replace("?", "0"))
        return "; ".join(str(r[-1]) for r in rows)
    assert backends.pg is not None
    params = sql.count("?")
    numbered = store.sql(sql)
    import asyncpg

    conn = await asyncpg.connect(backends.pg.url)
    try:
        rows = await conn.fetch("EXPLAIN (COSTS OFF) " + numbered, *([0] * params))
    finally:
        await conn.close()
    plan = "; ".join(str(r[0]).strip() for r in rows)
    return re.sub(r"'\{[0,]+\}'", "'{...}'", plan)


@contextmanager
def statement_times(store: HistoryStore) -> Iterator[dict[str, float]]:
    """Wall seconds per kind of statement that ``store`` runs meanwhile (the
    three of summaries(): the states, uptime, latency)."""
    spent: dict[str, float] = {}
    inner = store._fetch

    async def fetch(sql: str, *params: Any) -> list[Any]:
        kind = "latency" if "ROW_NUMBER" in sql else "uptime" if "SUM(CASE" in sql else "states"
        started = time.perf_counter()
        try:
            return await inner(sql, *params)
        finally:
            spent[kind] = spent.get(kind, 0.0) + time.perf_counter() - started

    store._fetch = fetch  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        del store._fetch


def fmt_spent(spent: dict[str, float]) -> str:
    return ", ".join(
        f"{kind} {spent.get(kind, 0):.3f} s" for kind in ("states", "uptime", "latency")
    )


#: The other candidate, for the uptime windows: runs and ok runs per job and
#: hour, kept by the writer (here built once from the runs), so 30 days of one
#: job are 720 rows whatever the interval.
ROLLUP = [
    "CREATE TABLE bench_hourly AS SELECT job_id, CAST(finished_at / 3600 AS INTEGER) AS hour, "
    "COUNT(*) AS runs, SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END) AS ok "
    "FROM runner_runs_kept GROUP BY job_id, CAST(finished_at / 3600 AS INTEGER)",
    "CREATE INDEX bench_hourly_job_hour ON bench_hourly (job_id, hour)",
]


async def rollup_uptime(store: HistoryStore, ids: list[int], now: float) -> list[Any]:
    """The four uptime windows of ``ids`` from the hourly table (to the hour)."""
    windows = [now - w for w in (3600, 86400, 7 * 86400, 30 * 86400)]
    marks = ", ".join("?" for _ in ids)
    sql = (
        "SELECT job_id, "
        + ", ".join("SUM(CASE WHEN hour >= ? THEN runs ELSE 0 END), "
                    "SUM(CASE WHEN hour >= ? THEN ok ELSE 0 END)" for _ in windows)
        + f" FROM bench_hourly WHERE hour >= ? AND job_id IN ({marks}) GROUP BY job_id"
    )  # fmt: skip
    params: list[Any] = []
    for w in windows:
        params += [int(w // 3600), int(w // 3600)]
    return await store._fetch(store.sql(sql), *params, int(windows[-1] // 3600), *ids)


#: Candidate index for summaries(): every column the uptime and latency
#: queries read, so they never touch the table.
COVERING = (
    "CREATE INDEX runner_runs_job_time_cover "
    "ON runner_runs_kept (job_id, finished_at, status, duration_ms)"
)


async def summaries(store: HistoryStore, jobs: list[str], now: float) -> None:
    """What ``runner status`` reads (the label of the figures in bench/README.md,
    where it was one method of the store): the states, then uptime and latency."""
    await store.load_states(jobs)
    await store.stats(jobs, now)


def status_queries(
    store: HistoryStore, jobs: list[str], now: float
) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        f"summaries(all {len(jobs):,} jobs)": lambda: summaries(store, jobs, now),
        "summaries(50 jobs)": lambda: summaries(store, jobs[:50], now),
        "load_states()": lambda: store.load_states(),
        "runs(job, limit=50)": lambda: store.runs("job-500", limit=50),
        'runs(job, status="fail")': lambda: store.runs("job-500", status="fail"),
    }


async def part_query(args: argparse.Namespace, backends: Backends) -> None:
    rows_wanted = args.fill_rows
    print(
        f"\n## 3. runner status queries: {rows_wanted:,} runs ({FILL_JOBS:,} jobs over 30 days)\n"
    )
    now = time.time()
    all_rows = []
    for name in backends.names:
        if name == "postgresql" and args.query_sqlite_only:
            continue
        all_rows += await query_run(backends, name, rows_wanted, now)
    print()
    print(
        table(
            ["store", "query", "first s", "median of 3 s", "with covering index s"],
            all_rows,
        )
    )


async def query_run(backends: Backends, name: str, rows_wanted: int, now: float) -> list[list[str]]:
    rows: list[list[str]] = []
    store = await backends.fresh(name)
    await store.open(create=True)
    jobs = [f"job-{i}" for i in range(FILL_JOBS)]
    hub = ResultHub()
    await store.write([], [hub.publish(record(j, now - 1)) for j in jobs])
    took = await fill(name, store, backends, rows_wanted, now - 30 * DAY, 30 * DAY)
    count = await store.count_runs()
    size = await db_size(name, store, backends)
    print(
        f"  {name}: filled {count:,} runs in {took:.1f} s, {fmt_bytes(size['total'])}",
        flush=True,
    )
    queries = status_queries(store, jobs, now)
    results: dict[str, tuple[float, float]] = {}
    for label, fn in queries.items():
        results[label] = await timed(fn)
        print(f"    {label}: first {results[label][0]:.3f} s, median {results[label][1]:.3f} s")
    summaries_all = next(iter(queries))
    with statement_times(store) as spent:
        await queries[summaries_all]()
    print(f"    {summaries_all}, by statement: {fmt_spent(spent)}")
    # The plans of summaries' two statements.
    marks = ", ".join("?" for _ in range(50))
    uptime = (
        "SELECT job_id, SUM(CASE WHEN finished_at >= ? AND status = 'ok' THEN 1 ELSE 0 END) "
        f"FROM runner_runs_kept WHERE finished_at >= ? AND job_id IN ({marks}) GROUP BY job_id"
    )
    latency = (
        "SELECT job_id, duration_ms, ROW_NUMBER() OVER (PARTITION BY job_id "
        "ORDER BY duration_ms) FROM runner_runs_kept "
        f"WHERE finished_at >= ? AND status = 'ok' AND job_id IN ({marks})"
    )
    for label, sql in (("uptime", uptime), ("latency", latency)):
        print(f"    plan of {label}: {await explain(name, store, backends, sql)}")
    # The candidate: a covering index.
    started = time.perf_counter()
    await store._execute(COVERING)
    index_s = time.perf_counter() - started
    after_size = await db_size(name, store, backends)
    print(
        f"    + covering index built in {index_s:.0f} s, "
        f"+{fmt_bytes(after_size['total'] - size['total'])}"
    )
    covered: dict[str, tuple[float, float]] = {}
    for label in list(queries)[:2]:
        covered[label] = await timed(queries[label])
        print(f"    {label} with it: median {covered[label][1]:.3f} s")
    with statement_times(store) as spent:
        await queries[summaries_all]()
    print(f"    {summaries_all} with it, by statement: {fmt_spent(spent)}")
    for label, sql in (("uptime", uptime), ("latency", latency)):
        print(f"    plan of {label} with it: {await explain(name, store, backends, sql)}")
    await store._execute("DROP INDEX runner_runs_job_time_cover")
    started = time.perf_counter()
    for statement in ROLLUP:
        await store._execute(statement)
    rollup_s = time.perf_counter() - started
    ids = list((await store.job_ids()).values())
    _, rollup_all = await timed(lambda: rollup_uptime(store, ids, now))
    _, rollup_50 = await timed(lambda: rollup_uptime(store, ids[:50], now))
    print(
        f"    uptime from an hourly rollup (built in {rollup_s:.0f} s): all jobs "
        f"{rollup_all:.3f} s, 50 jobs {rollup_50:.3f} s"
    )
    await store.close()
    for label, (first, median) in results.items():
        after = f"{covered[label][1]:.3f}" if label in covered else "-"
        rows.append([name, label, f"{first:.3f}", f"{median:.3f}", after])
    rows.append(
        [name, "uptime statement alone, from an hourly rollup (all / 50 jobs)", "-",
         "-", f"{rollup_all:.3f} / {rollup_50:.3f}"]
    )  # fmt: skip
    rows.append(
        [name, "(covering index: size, build time)", "-",
         f"+{fmt_bytes(after_size['total'] - size['total'])}", f"{index_s:.0f} s"]
    )  # fmt: skip
    return rows


# --------------------------------------------------------------------- 4. retention


async def produce(hub: ResultHub, jobs: int, rate: int, stop: asyncio.Event) -> None:
    """``rate`` runs a second, spread over ``jobs`` jobs, in 10 ms slices."""
    loop = asyncio.get_running_loop()
    per_tick = max(1, rate // 100)
    i = 0
    due = loop.time()
    while not stop.is_set():
        for _ in range(per_tick):
            hub.publish(record(f"job-{i % jobs}", time.time()))
            i += 1
        due += 0.01
        await asyncio.sleep(max(0.0, due - loop.time()))


class WriteTimes:
    """Every store.write duration, taken around the sink's own call; a failed
    write is counted and the first one's traceback printed."""

    def __init__(self, store: HistoryStore) -> None:
        self.times: list[float] = []
        self.failures = 0
        inner = store.write

        async def write(records: Any, states: Any) -> None:
            started = time.perf_counter()
            try:
                await inner(records, states)
            except Exception:
                self.failures += 1
                if self.failures == 1:
                    traceback.print_exc()
                raise
            finally:
                self.times.append(time.perf_counter() - started)

        store.write = write  # type: ignore[method-assign]


def read_ids_once(store: HistoryStore) -> None:
    """The suggested fix, for comparison: ``store.prune(jobs=[job])`` reads every
    job's id (``job_ids()``) on each call, and ``HistorySink.prune`` calls it once
    per job, so a pass reads the jobs table once per job. Here only the first
    read goes to the database."""
    inner = store.job_ids
    cached: dict[str, int] | None = None

    async def job_ids() -> dict[str, int]:
        nonlocal cached
        if cached is None:
            cached = await inner()
        return dict(cached)

    store.job_ids = job_ids  # type: ignore[method-assign]


async def part_retention(args: argparse.Namespace, backends: Backends) -> None:
    old = args.retention_rows
    rate, jobs = 10_000, args.retention_jobs
    print(
        f"\n## 4. retention: prune {old:,} old runs (of {FILL_JOBS:,} jobs) while "
        f"{rate:,} runs/s are written ({jobs:,} jobs)\n"
    )
    variants = {"as is": False, "job ids read once per pass": True}
    if args.retention_as_is_only:
        del variants["job ids read once per pass"]
    rows = []
    for name in backends.names:
        for variant, once in variants.items():
            rows.append(await retention_run(args, backends, name, jobs, rate, old, variant, once))
    print()
    headers = ["store", "prune", "longest write ms, no retention",
               "longest write ms, during prune", "longest loop stall ms, without / during",
               "deleted", "CPU s of the prune pass"]  # fmt: skip
    print(table(headers, rows))


async def retention_run(
    args: argparse.Namespace,
    backends: Backends,
    name: str,
    jobs: int,
    rate: int,
    old: int,
    variant: str,
    once: bool,
) -> list[str]:
    store = await backends.fresh(name)
    await store.open(create=True)
    now = time.time()
    hub = ResultHub()
    await store.write([], [hub.publish(record(f"job-{i}", now - 1)) for i in range(jobs)])
    # Old runs: 31 to 61 days ago, all past the default keep of 30 days.
    took = await fill(name, store, backends, old, now - 61 * DAY, 30 * DAY)
    print(
        f"  {name}, prune {variant}: {await store.count_runs():,} old runs filled in {took:.1f} s",
        flush=True,
    )
    if once:
        read_ids_once(store)
    times = WriteTimes(store)
    sink = HistorySink(store, flush_every=1.0, keep=30 * DAY, retention_first=1e9)
    stop = asyncio.Event()
    async with AsyncExitStack() as stack:
        await sink.start(stack)
        producer = asyncio.create_task(produce(ResultHub([sink]), jobs, rate, stop))
        await asyncio.sleep(2)  # the first batches
        times.times.clear()
        watch = StallWatch()
        watch.start()
        await asyncio.sleep(args.retention_quiet)
        quiet = list(times.times)
        quiet_stall = watch.longest
        times.times.clear()
        watch.longest = 0.0
        c0, s0 = cpu(), backends.server_cpu(name)
        t0 = time.thread_time()
        started = time.perf_counter()
        deleted = await sink.prune()
        pruning = time.perf_counter() - started
        loop_cpu = time.thread_time() - t0
        used, server = cpu() - c0, backends.server_cpu(name) - s0
        during = list(times.times)
        prune_stall = watch.longest
        await watch.stop()
        stop.set()
        await producer
        left = await store.count_runs()
    print(
        f"    without retention: {len(quiet)} writes, longest {max(quiet) * 1000:.0f} ms, "
        f"loop stall {quiet_stall * 1000:.0f} ms\n"
        f"    during prune: {len(during)} writes, longest {max(during, default=0) * 1000:.0f}"
        f" ms, loop stall {prune_stall * 1000:.0f} ms; deleted {deleted:,} in {pruning:.1f} s "
        f"({deleted / pruning:,.0f}/s), CPU {used:.1f} s (loop thread {loop_cpu:.1f} s, "
        f"server {server:.1f} s); {left:,} runs left; failed writes {times.failures}",
        flush=True,
    )
    return [
        name,
        variant,
        f"{max(quiet) * 1000:.0f}",
        f"{max(during, default=0) * 1000:.0f}",
        f"{quiet_stall * 1000:.0f} / {prune_stall * 1000:.0f}",
        f"{deleted:,} in {pruning:.1f} s ({deleted / pruning:,.0f}/s)",
        f"{used:.1f} (loop {loop_cpu:.1f})"
        + (f" + server {server:.1f}" if name == "postgresql" else ""),
    ]


# --------------------------------------------------------------------- main


# --------------------------------------------------------------------- 5. layout (issue 23)

#: The commit whose history layout (schema 5: every run a row of runner_runs,
#: indexed by job and time; hourly counts upserted every batch) is compared.
BASELINE = "80099d7"


def schema5_package(tmp: Path, commit: str) -> Any:
    """The history store of ``commit`` (store.py, sqlite.py, postgres.py as they
    were), importable beside today's as ``runner_schema5``."""
    package = tmp / "baseline" / "runner_schema5"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in ("store", "sqlite", "postgres"):
        text = subprocess.run(
            ["git", "show", f"{commit}:src/runner/history/{name}.py"],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        ).stdout
        (package / f"{name}.py").write_text(text.replace("runner.history.", "runner_schema5."))
    import importlib
    import sys

    sys.path.insert(0, str(package.parent))
    return (
        importlib.import_module("runner_schema5.sqlite"),
        importlib.import_module("runner_schema5.postgres"),
    )


#: The steady state of schema 6 at 10,000 jobs x 1 s, as far as its write cost goes:
#: each table big enough that each job's stretch of it has pages of its own.
SQLITE_FILL_6 = [
    """WITH RECURSIVE k(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM k WHERE x < :minutes - 1)
    INSERT INTO runner_minutes (job_id, minute, runs, ok)
    SELECT j.id, :minute0 + k.x, 60, 59 FROM k CROSS JOIN runner_jobs j""",
    """WITH RECURSIVE k(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM k WHERE x < :hours - 1)
    INSERT INTO runner_hours (job_id, hour, runs, ok)
    SELECT j.id, :hour0 + k.x, 3600, 3590 FROM k CROSS JOIN runner_jobs j""",
    """WITH RECURSIVE k(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM k WHERE x < 24 * 5 - 1)
    INSERT INTO runner_latency (job_id, hour, bucket, runs)
    SELECT j.id, :hour_now - 24 + k.x / 5, -340 + k.x % 5, 700 FROM k CROSS JOIN runner_jobs j""",
]
PG_FILL_6 = [
    """INSERT INTO runner_minutes (job_id, minute, runs, ok)
    SELECT j.id, $2::bigint + x, 60, 59 FROM generate_series(0, $1::bigint - 1) AS x
    CROSS JOIN runner_jobs j""",
    """INSERT INTO runner_hours (job_id, hour, runs, ok)
    SELECT j.id, $2::bigint + x, 3600, 3590 FROM generate_series(0, $1::bigint - 1) AS x
    CROSS JOIN runner_jobs j""",
    """INSERT INTO runner_latency (job_id, hour, bucket, runs)
    SELECT j.id, $2::bigint - 24 + x / 5, -340 + x % 5, 700
    FROM generate_series(0, 24 * 5 - 1) AS x CROSS JOIN runner_jobs j WHERE $1::bigint > 0""",
]


async def fill_layout6(
    name: str, store: HistoryStore, backends: Backends, rows: int, now: float, jobs: int
) -> None:
    """Schema 6 holding what a daemon of ``jobs`` jobs has after a while: ``rows``
    kept runs, and counts: minutes (a day's worth up to ``rows / jobs``), hours and a
    day of latency buckets."""
    await fill(name, store, backends, rows, now - 30 * DAY, 30 * DAY - 120, jobs)
    minutes = min(1440, max(1, rows // jobs))
    hours = min(720, max(1, rows // jobs))
    minute0, hour0 = int(now // 60) - minutes - 2, int(now // 3600) - hours - 1
    if name == "sqlite":
        assert isinstance(store, SQLiteStore)

        def work() -> None:
            conn = sqlite3.connect(store.path, isolation_level=None)
            conn.execute("DELETE FROM runner_hours")
            for sql in SQLITE_FILL_6:
                conn.execute(
                    sql,
                    {"minutes": minutes, "minute0": minute0, "hours": hours, "hour0": hour0,
                     "hour_now": int(now // 3600)},
                )  # fmt: skip
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()

        await asyncio.to_thread(work)
        return
    import asyncpg

    assert backends.pg is not None
    conn = await asyncpg.connect(store.url)  # type: ignore[attr-defined]
    try:
        await conn.execute("DELETE FROM runner_hours")
        await conn.execute(PG_FILL_6[0], minutes, minute0)
        await conn.execute(PG_FILL_6[1], hours, hour0)
        await conn.execute(PG_FILL_6[2], 1, int(now // 3600))
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def part_layout(args: argparse.Namespace, backends: Backends) -> None:
    jobs, per_trial, trials = args.layout_jobs, args.layout_batches, args.layout_trials
    prefill = args.write_prefill
    print(
        f"\n## 5. Layout: schema 5 ({args.baseline}) and schema 6 side by side: "
        f"{trials} interleaved trials of {per_trial} batches of {jobs:,} runs (one per job, "
        f"1 s apart, with states), each store holding {prefill:,} runs before\n"
    )
    old_sqlite, old_postgres = schema5_package(backends.tmp, args.baseline)
    compact = {
        f"schema 6, compacting {every:g} s": every
        for every in (float(x) for x in args.layout_compact.split(","))
    }
    labels = ("schema 5", *compact)
    rows_out = []
    for name in backends.names:
        stores: dict[str, Any] = {}
        hubs: dict[str, ResultHub] = {}
        clock: dict[str, float] = {}
        start = time.time() - (trials * per_trial + 5)
        for n, label in enumerate(labels):
            if name == "sqlite":
                path = backends.tmp / f"layout-{n}.sqlite3"
                store = (old_sqlite.SQLiteStore if label == "schema 5" else SQLiteStore)(path)
            else:
                assert backends.pg is not None
                url = await pg_database(backends.pg.url, f"layout{n}")
                if label == "schema 5":
                    store = old_postgres.PostgresStore(url)
                else:
                    from runner.history.postgres import PostgresStore

                    store = PostgresStore(url)
            if label in compact:
                store.compact_every = compact[label]
            await store.open(create=True)
            hub = ResultHub()
            await store.write(
                [], [hub.publish(record(f"job-{i}", start - 60)) for i in range(jobs)]
            )
            t0 = time.perf_counter()
            if label == "schema 5":
                await fill(name, store, backends, prefill, start - 30 * DAY, 30 * DAY - 120, jobs)
            else:
                await fill_layout6(name, store, backends, prefill, start, jobs)
            print(f"  {name} {label}: filled in {time.perf_counter() - t0:.0f} s", flush=True)
            stores[label], hubs[label], clock[label] = store, hub, start
        results: dict[str, list[dict[str, float]]] = {label: [] for label in labels}
        for trial in range(trials):
            for label in labels if trial % 2 == 0 else labels[::-1]:
                store, hub = stores[label], hubs[label]
                used = server = 0.0
                durations = []
                compactions: list[float] = []
                if label in compact:  # each compaction step's own time, apart

                    async def timed_compact(
                        *step: int, real: Any = store._compact, out: list[float] = compactions
                    ) -> int:
                        started = time.perf_counter()
                        try:
                            return int(await real(*step))
                        finally:
                            out.append(time.perf_counter() - started)

                    store._compact = timed_compact
                io0 = backends.written(name)
                for _ in range(per_trial):
                    at = clock[label]
                    records = [record(f"job-{i}", at + i / jobs) for i in range(jobs)]
                    states = [hub.publish(r) for r in records]
                    clock[label] = at + 1
                    gc.collect()
                    c0, s0, w0 = time.process_time(), backends.server_cpu(name), time.perf_counter()
                    await store.write(records, states)
                    durations.append(time.perf_counter() - w0)
                    used += time.process_time() - c0
                    server += backends.server_cpu(name) - s0
                io = backends.written(name) - io0
                n = jobs * per_trial
                result = {
                    "cpu": used / n * 1000,
                    "server": server / n * 1000,
                    "mib": io / n * 1000 / 2**20,
                    "median_ms": statistics.median(durations) * 1000,
                    "max_ms": max(durations) * 1000,
                    "compaction_ms": max(compactions, default=0.0) * 1000,
                }
                if label in compact:
                    del store._compact  # the class's again
                results[label].append(result)
                print(
                    f"  {name} {label} trial {trial + 1}: CPU {result['cpu']:.4f} s/1000 rows, "
                    f"server {result['server']:.4f}, {result['mib']:.2f} MiB/1000 rows, batch "
                    f"median {result['median_ms']:.0f} ms max {result['max_ms']:.0f} ms, "
                    f"{len(compactions)} compaction steps, "
                    f"longest {result['compaction_ms']:.0f} ms",
                    flush=True,
                )
        for label in labels:
            await stores[label].close()

        def med(label: str, key: str, results: dict[str, list[dict[str, float]]] = results) -> str:
            values = [r[key] for r in results[label]]
            return f"{statistics.median(values):.4f} ({min(values):.4f}-{max(values):.4f})"

        def ratio(
            label: str, key: str, results: dict[str, list[dict[str, float]]] = results
        ) -> str:
            old = statistics.median(r[key] for r in results["schema 5"])
            new = statistics.median(r[key] for r in results[label])
            return f"{new / old:.2f}x" if old else "-"

        for label in labels:
            rows_out.append(
                [f"{name}, {label}", med(label, "cpu"),
                 med(label, "server") if name == "postgresql" else "-",
                 med(label, "mib"), med(label, "median_ms"), med(label, "max_ms"),
                 med(label, "compaction_ms") if label in compact else "-"]
            )  # fmt: skip
        for label in compact:
            rows_out.append(
                [f"{name}: {label} / schema 5", ratio(label, "cpu"),
                 ratio(label, "server") if name == "postgresql" else "-", ratio(label, "mib"),
                 ratio(label, "median_ms"), ratio(label, "max_ms"), "-"]
            )  # fmt: skip
    print()
    headers = ["store", "CPU s / 1,000 rows (process)", "server CPU s / 1,000 rows",
               "MiB written / 1,000 rows", "batch median ms", "batch max ms",
               "longest compaction step ms"]  # fmt: skip
    print(table(headers, rows_out))


async def pg_database(url: str, name: str) -> str:
    """A fresh database ``name`` on the server of ``url``; its URL."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name}")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return url.rsplit("/", 1)[0] + "/" + name


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in part 1")
    parser.add_argument("--seconds", type=float, default=10, help="window of part 1")
    parser.add_argument("--warmup", type=float, default=3, help="before each window of part 1")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of part 1 (medians)")
    parser.add_argument(
        "--prefill", type=int, default=5_000_000, help="runs in the history before, part 1"
    )
    parser.add_argument("--parts", default="scheduler,write,query,retention")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--write-batches", type=int, default=30, help="batches in part 2")
    parser.add_argument(
        "--write-prefill", type=int, default=5_000_000, help="runs there before, part 2 (0: skip)"
    )
    parser.add_argument("--fill-rows", type=int, default=10_000_000, help="history of part 3")
    parser.add_argument("--query-sqlite-only", action="store_true")
    parser.add_argument("--retention-rows", type=int, default=2_000_000, help="old runs, part 4")
    parser.add_argument("--retention-jobs", type=int, default=10_000, help="jobs in part 4")
    parser.add_argument("--retention-quiet", type=float, default=5, help="window without prune")
    parser.add_argument("--retention-as-is-only", action="store_true")
    parser.add_argument("--baseline", default=BASELINE, help="part 5: schema 5's commit")
    parser.add_argument("--layout-jobs", type=int, default=10_000, help="jobs in part 5")
    parser.add_argument("--layout-batches", type=int, default=120, help="batches a trial, part 5")
    parser.add_argument("--layout-trials", type=int, default=3, help="trials of part 5")
    parser.add_argument(
        "--layout-compact", default="60", help="part 5: schema 6's compact_every, a list"
    )
    parser.add_argument("--tmp", default=None, help="folder for SQLite files (default: a temp dir)")
    parser.add_argument("--flush-every", type=float, default=1.0, help="the sink's, part 1")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="the sink's BATCH_SIZE, part 1 (a trial)"
    )
    parser.add_argument(
        "--gc-default",
        action="store_true",
        help="Python's default gc thresholds, not runner serve's (700, 10, 100)",
    )
    parser.add_argument("--gc-thresholds", default=None, help="a trial: 700,10,1000")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="part 1: gc.freeze() once the jobs have started",
    )
    args = parser.parse_args()
    global GC_FREEZE
    GC_FREEZE = args.gc_freeze
    if args.gc_thresholds:
        gc.set_threshold(*(int(t) for t in args.gc_thresholds.split(",")))
    elif not args.gc_default:
        heap.tune()  # as `runner serve` does
    if args.batch_size:
        sink_module.BATCH_SIZE = args.batch_size
    names = [b for b in args.backends.split(",") if b]
    parts = args.parts.split(",")
    pg = None
    tmp = Path(tempfile.mkdtemp(prefix="runner-bench-", dir=args.tmp))
    try:
        if "postgresql" in names:
            pg = Postgres()
            pg.start()
        print(
            f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
            + (f", {pg.version} (fsync on)" if pg else "")
        )
        backends = Backends(names, tmp, pg)
        if "scheduler" in parts:
            await part_scheduler(args, backends)
        if "write" in parts:
            await part_write(args, backends)
        if "query" in parts:
            await part_query(args, backends)
        if "retention" in parts:
            await part_retention(args, backends)
        if "layout" in parts:
            await part_layout(args, backends)
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())

"""How the scheduler scales: start-up of N jobs, idle cost, and start lateness.

Run: .venv/bin/python bench/scheduler.py [--jobs 1000] [--seconds 10]

Side by side in one process, so the ratios hold on a noisy shared machine:
  * runner's Scheduler with N ``sleep`` jobs (seconds: 0)
  * a bare-loop baseline: loop.call_at + create_task per run, the least any
    asyncio scheduler can do
Reported: time until every job's first run finished, CPU seconds per 1,000
runs at a 1 s interval, start lateness p50/p99 (how late each run began
against its due time), and CPU used while N jobs wait on a 1 h interval.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import statistics
import time
from contextlib import AsyncExitStack

from runner.builtins.sleep import Sleep, SleepOptions
from runner.config import Job
from runner.resources import Resources
from runner.results import JobState, ResultHub, RunRecord
from runner.scheduler import Scheduler, first_run_offset


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def job(i: int, interval: float) -> Job:
    return Job(f"job-{i}", "sleep", Sleep, SleepOptions(seconds=0), interval, 10, 1)


class Sink:
    def __init__(self) -> None:
        self.count = 0
        self.first_done = asyncio.Event()
        self.expect = 0

    async def start(self, exit_stack: AsyncExitStack) -> None:
        pass

    def submit(self, record: RunRecord, state: JobState) -> None:
        self.count += 1
        if self.count == self.expect:
            self.first_done.set()


async def runner_startup(n: int) -> float:
    sink = Sink()
    sink.expect = n
    scheduler = Scheduler(Resources(), ResultHub([sink]))
    started = time.perf_counter()
    scheduler.start_all(job(i, 3600) for i in range(n))
    await sink.first_done.wait()
    elapsed = time.perf_counter() - started
    await scheduler.stop_all()
    return elapsed


async def runner_idle(n: int, seconds: float) -> float:
    sink = Sink()
    sink.expect = n
    scheduler = Scheduler(Resources(), ResultHub([sink]))
    scheduler.start_all(job(i, 3600) for i in range(n))
    await sink.first_done.wait()
    before = cpu()
    await asyncio.sleep(seconds)
    used = cpu() - before
    await scheduler.stop_all()
    return used


async def runner_periodic(n: int, seconds: float) -> tuple[float, list[float]]:
    """N jobs every 1 s; lateness read from the run tasks' actual start."""
    lateness: list[float] = []
    loop = asyncio.get_running_loop()

    jobs = [Job(f"job-{i}", "sleep", Sleep, SleepOptions(seconds=0), 1.0, 10, 1) for i in range(n)]
    offsets = {j.name: first_run_offset(j) for j in jobs}
    anchors: dict[str, float] = {}

    class Timed(Sleep):
        async def run(self, ctx):  # type: ignore[no-untyped-def]
            # Due times are anchor + offset + k * 1 s. The handle's started_at
            # (time.monotonic, the loop's clock) is taken just before the anchor.
            late = (loop.time() - anchors[ctx.job] - offsets[ctx.job]) % 1.0
            lateness.append(late - 1.0 if late > 0.5 else late)
            return await super().run(ctx)

    jobs = [Job(j.name, "sleep", Timed, j.options, 1.0, 10, 1) for j in jobs]
    sink = Sink()
    scheduler = Scheduler(Resources(), ResultHub([sink]))
    scheduler.start_all(jobs)
    anchors.update({name: h.started_at for name, h in scheduler.handles.items()})
    await asyncio.sleep(1.5)  # let every job reach its steady phase
    lateness.clear()
    before_cpu, before_runs = cpu(), sink.count
    await asyncio.sleep(seconds)
    used, runs = cpu() - before_cpu, sink.count - before_runs
    await scheduler.stop_all()
    return used / runs * 1000, lateness


async def baseline_periodic(n: int, seconds: float) -> tuple[float, list[float]]:
    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    runs = 0
    stop = False
    tasks: set[asyncio.Task[None]] = set()

    async def run(due: float) -> None:
        nonlocal runs
        lateness.append(loop.time() - due)
        await asyncio.sleep(0)
        runs += 1

    def fire(due: float) -> None:
        if stop:
            return
        task = loop.create_task(run(due))
        tasks.add(task)  # keep a reference, as a real scheduler must
        task.add_done_callback(tasks.discard)
        loop.call_at(due + 1.0, fire, due + 1.0)

    start = loop.time()
    for i in range(n):
        due = start + (i / n)  # spread over the interval, like the scheduler
        loop.call_at(due, fire, due)
    await asyncio.sleep(1.5)
    lateness.clear()
    before_cpu, before_runs = cpu(), runs
    await asyncio.sleep(seconds)
    used, count = cpu() - before_cpu, runs - before_runs
    stop = True
    return used / count * 1000, lateness


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[int(p) - 1] * 1000 if len(values) > 1 else 0.0


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    n, secs = args.jobs, args.seconds
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {n} jobs, {secs:g} s windows"
    )
    print(f"start-up: all {n} first runs done in {await runner_startup(n):.3f} s")
    idle = await runner_idle(n, secs)
    print(f"idle: {n} jobs on a 1 h interval used {idle:.4f} CPU s in {secs:g} s")
    r_cpu, r_late = await runner_periodic(n, secs)
    b_cpu, b_late = await baseline_periodic(n, secs)
    print(f"{'1 s interval':<14} {'CPU s/1000 runs':>16} {'late p50 ms':>12} {'late p99 ms':>12}")
    print(f"{'runner':<14} {r_cpu:>16.4f} {pct(r_late, 50):>12.2f} {pct(r_late, 99):>12.2f}")
    print(f"{'bare loop':<14} {b_cpu:>16.4f} {pct(b_late, 50):>12.2f} {pct(b_late, 99):>12.2f}")
    print(f"ratio runner/bare CPU per run: {r_cpu / b_cpu:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())

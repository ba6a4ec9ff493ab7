"""How the HTTP endpoint scales: /metrics for 10,000 jobs, the status page for 1,000.

Run: .venv/bin/python bench/web.py [--jobs 10000] [--busy 1000] [--interval 1]
     [--seconds 8] [--scrapes 4] [--rounds 3] [--page-jobs 1000] [--loads 5]

One process, real daemons (``Daemon.serve``) on this process's loop, each with
``http: {listen: "127.0.0.1:0"}``, history off and no result sinks.

/metrics: ``--jobs`` ``sleep`` jobs (0 s each); ``--busy`` of them run every
``--interval`` s and record their start lateness (each run's ``loop.time()``
against its due time, anchor + first-run offset + k * interval, as
bench/scheduler.py does), the rest run every hour and are only there to be
reported. 10,000 jobs every 1 s would be more runs than one loop can start
on these machines (try ``--busy 10000``). Each round has five equal windows,
side by side, so the machine's noise hits them all:
  * idle: no scrapes;
  * scraped: ``--scrapes`` GETs of /metrics spread over the window, by a
    client in a child process (its CPU is not counted);
  * gc frozen: the same after ``gc.freeze()``;
  * sketch: the same with the daemon's ``generate_latest`` swapped for
    :class:`Sketch`, a faster writer of the same text (an idea, measured);
  * on loop: ``generate_latest(registry)`` called on the event loop itself,
    which is what handing it to a thread avoids.
Reported: this process's CPU (every thread) per window and per scrape above
idle, lateness p50/p99, garbage collector pauses, ``loop.blocked`` warnings,
the body's size and samples, and where one ``generate_latest``'s time goes.

The status page: a second daemon with ``--page-jobs`` jobs, half ``sleep``
(ok) and half ``http-status`` against a closed 127.0.0.1 port (error),
loaded in headless Chromium (Playwright), timed from ``page.goto`` until
every ``.job`` card is in the DOM, each load in a fresh browser context;
with the bars the first results give, then with full bars (100 results per
job, published through the hub).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import platform
import pstats
import re
import resource
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from runner import __version__
from runner.builtins.browser.page_title import CHROMIUM_ARGS, find_chromium
from runner.builtins.sleep import Sleep
from runner.config import Config, load_config
from runner.daemon import Daemon
from runner.log import configure_logging
from runner.metrics import DaemonCollector, JobCollector
from runner.model import Health, JobState, RunRecord
from runner.plugin import Result, RunContext, Status
from runner.scheduler import JobHandle, first_run_offset

#: The scrape client, run as a child process: COUNT GETs of URL spread over
#: SECONDS, then it waits out the window; prints one line per scrape.
CLIENT = """
import sys, time, urllib.request
url, count, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
start = time.monotonic()
for i in range(count):
    time.sleep(max(0.0, start + i * seconds / count - time.monotonic()))
    began = time.monotonic()
    body = urllib.request.urlopen(url, timeout=120).read()
    samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    print(time.monotonic() - began, len(body), samples, flush=True)
time.sleep(max(0.0, start + seconds - time.monotonic()))
"""


def cpu() -> float:
    """CPU seconds of this process, every thread (not the scrape client's)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pct(values: list[float], p: int) -> float:
    """The p-th percentile of ``values`` (seconds), in ms."""
    return statistics.quantiles(values, n=100)[p - 1] * 1000 if len(values) > 1 else 0.0


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.node()} ({model or platform.processor()}), {platform.machine()}, "
        f"{os.cpu_count()} cores, {platform.freedesktop_os_release().get('PRETTY_NAME', '')}, "
        f"Python {platform.python_version()}"
    )


class LogCounter(io.StringIO):
    """The daemon's log (warnings and up), kept to count ``loop.blocked``."""

    def blocked(self) -> int:
        return self.getvalue().count('"loop.blocked"')


def sleep_jobs(prefix: str, count: int, interval: float) -> list[str]:
    return [
        f"{{name: {prefix}-{i:05d}, plugin: sleep, interval: {interval:g}s,"
        f" options: {{seconds: 0}}}}"
        for i in range(count)
    ]


def failing_jobs(count: int, interval: float) -> list[str]:
    """http-status jobs against a closed 127.0.0.1 port: each run is an error."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    return [
        f"{{name: fail-{i:05d}, plugin: http-status, interval: {interval:g}s, timeout: 5s,"
        f" options: {{url: 'http://127.0.0.1:{port}/'}}}}"
        for i in range(count)
    ]


def write_config(path: Path, jobs: list[str]) -> Path:
    lines = ['http: {listen: "127.0.0.1:0"}', "history: {enabled: false}", "jobs:"]
    path.write_text("\n".join([*lines, *(f"  - {job}" for job in jobs)]) + "\n")
    return path


class Lateness:
    """Check start lateness: a Sleep plugin that records how late each run began."""

    def __init__(self, config: Config) -> None:
        self.values: list[float] = []
        #: The scheduler's handles (set once the daemon exists), for each job's anchor.
        self.handles: dict[str, JobHandle] = {}
        self._due = {
            j.name: (first_run_offset(j), getattr(j.schedule, "every", 1.0)) for j in config.jobs
        }

    def timed(self, config: Config) -> Config:
        """``config`` with each job's plugin swapped for the recording Sleep."""
        loop, values, owner, due = asyncio.get_running_loop(), self.values, self, self._due

        class Timed(Sleep):
            async def run(self, ctx: RunContext) -> Result:
                # Due times are anchor + offset + k * interval; the handle's
                # started_at (time.monotonic, the loop's clock) is taken just
                # before the scheduler's anchor.
                offset, interval = due[ctx.job]
                anchor = owner.handles[ctx.job].started_at
                late = (loop.time() - anchor - offset) % interval
                values.append(late - interval if late > interval / 2 else late)
                return await super().run(ctx)

        return replace(config, jobs=tuple(replace(j, plugin=Timed) for j in config.jobs))


@asynccontextmanager
async def serving(daemon: Daemon) -> AsyncIterator[Daemon]:
    """``daemon`` running on this loop (as runner.testing.running_daemon does)."""
    task = asyncio.create_task(daemon.serve(handle_signals=False), name="runner-daemon")
    running = asyncio.create_task(daemon.running.wait())
    try:
        async with asyncio.timeout(120):
            await asyncio.wait([task, running], return_when=asyncio.FIRST_COMPLETED)
        if not running.done():
            task.result()
            raise RuntimeError("the daemon stopped before it was running")
        yield daemon
    finally:
        running.cancel()
        daemon.request_stop("bench finished")
        await asyncio.gather(task, running, return_exceptions=True)


# --------------------------------------------------------------------------- /metrics


class GcWatch:
    """The garbage collector's pauses, in any thread (all of them hold the GIL)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._began = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._began))


class Sketch:
    """A sketch of a faster /metrics, to measure the idea, not the daemon's code.

    The same text as DaemonCollector + generate_latest (checked byte for byte
    at start), written straight from the JobStates: each job's label string
    is escaped once, no Sample objects are built, and with ``cache`` a job
    whose JobState object is the one seen last scrape (the hub replaces it on
    every change) is not rendered again.
    """

    FAMILIES = (
        ("runner_job_up", "1 if the job's last result was ok (or the service is up), else 0"),
        ("runner_job_down", "1 while the job is down (past its failure_threshold)"),
        ("runner_job_last_duration_seconds", "Duration of the job's last run"),
        ("runner_job_last_attempts", "Attempts the job's last run took (with retries)"),
        ("runner_job_runs_total", "Finished runs by status"),
        ("runner_job_state_changes_total", "Times the job went from ok to failing or back"),
        ("runner_http_status_code", "Status code of the last answer (http-status checks)"),
    )

    def __init__(self, daemon: Daemon, *, cache: bool = False) -> None:
        self.daemon = daemon
        self.cache: dict[str, tuple[JobState, tuple[str, ...]]] | None = {} if cache else None
        self.heads = [
            f"# HELP {name} {text}\n# TYPE {name} {'counter' if '_total' in name else 'gauge'}\n"
            for name, text in self.FAMILIES
        ]

    def __call__(self, registry: object = None) -> bytes:
        rows = []
        for state in self.daemon.hub.states.values():
            known = self.cache.get(state.job) if self.cache is not None else None
            if known is None or known[0] is not state:
                known = (state, _job_lines(state))
                if self.cache is not None:
                    self.cache[state.job] = known
            rows.append(known[1])
        out = []
        for i, head in enumerate(self.heads):
            out.append(head)
            out.extend(row[i] for row in rows)
        daemon = self.daemon
        assert daemon.alerts is None and daemon.history is None  # not in this bench's config
        kinds = [s.kind for s in daemon.hub.states.values()]
        out.append(
            "# HELP runner_up 1 while the daemon runs\n# TYPE runner_up gauge\nrunner_up 1.0\n"
            "# HELP runner_loop_lag_seconds How long the event loop has kept the"
            " blocked-loop watcher's probe waiting\n"
            "# TYPE runner_loop_lag_seconds gauge\n"
            f"runner_loop_lag_seconds {floatToGoString(daemon.loop_monitor.lag)}\n"
            "# HELP runner_jobs Jobs in the config, by kind\n# TYPE runner_jobs gauge\n"
            f'runner_jobs{{kind="check"}} {float(kinds.count("check"))}\n'
            f'runner_jobs{{kind="service"}} {float(kinds.count("service"))}\n'
            "# HELP runner_build_info runner's version\n# TYPE runner_build_info gauge\n"
            f'runner_build_info{{version="{_escape(__version__)}"}} 1.0\n'
        )
        return "".join(out).encode()


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _job_lines(state: JobState) -> tuple[str, ...]:
    """One job's lines of each of Sketch.FAMILIES."""
    labels = f'name="{_escape(state.job)}",plugin="{_escape(state.plugin)}"'
    if state.kind == "service":
        return (f"runner_job_up{{{labels}}} {1.0 if state.ready else 0.0}\n", *[""] * 6)
    up = ""
    if state.state is not Health.UNKNOWN:
        up = f"runner_job_up{{{labels}}} {1.0 if state.state is Health.OK else 0.0}\n"
    counts = state.counts
    runs = "".join(
        f'runner_job_runs_total{{{labels},status="{s}"}} {float(counts.get(s, 0))}\n'
        for s in STATUSES
    )
    duration = attempts = code = ""
    if state.last is not None:
        seconds = floatToGoString(state.last.duration_ms / 1000)
        duration = f"runner_job_last_duration_seconds{{{labels}}} {seconds}\n"
        attempts = f"runner_job_last_attempts{{{labels}}} {float(state.last.attempts)}\n"
        status_code = state.last.fields.get("status_code")
        if isinstance(status_code, int):
            code = f"runner_http_status_code{{{labels}}} {float(status_code)}\n"
    return (
        up,
        f"runner_job_down{{{labels}}} {1.0 if state.down else 0.0}\n",
        duration,
        attempts,
        runs,
        f"runner_job_state_changes_total{{{labels}}} {float(state.state_changes)}\n",
        code,
    )


STATUSES = [s.value for s in Status]


async def window(
    kind: str,
    daemon: Daemon,
    lateness: list[float],
    watch: GcWatch,
    log: LogCounter,
    count: int,
    seconds: float,
) -> dict[str, Any]:
    """One measuring window of ``seconds``, ``count`` scrapes spread over it.

    ``idle``: none; ``scraped``: GETs by the child client; ``gc frozen``: the
    same with ``gc.freeze()`` (the heap so far left out of collections);
    ``sketch``: the same with the daemon's generate_latest swapped for
    :class:`Sketch`; ``on loop``: generate_latest called on the event loop.
    """
    assert daemon.web is not None
    url = f"http://127.0.0.1:{daemon.web.port}/metrics"
    scrapes: list[tuple[float, int, int]] = []
    gen_cpu: list[float] = []
    blocked = log.blocked()
    # Each window starts without the collector's debt from the one before
    # (a full collection that would land in whichever window comes next),
    # and once the runs that collection delayed have started.
    gc.collect()
    await asyncio.sleep(0.5)
    if kind == "gc frozen":
        gc.freeze()
    if kind == "sketch":
        daemon.web.exposition.render = Sketch(daemon)  # type: ignore[method-assign]
    lateness.clear()
    watch.pauses.clear()
    began, before = time.monotonic(), cpu()
    try:
        if kind == "on loop":
            for i in range(count):
                await asyncio.sleep(max(0.0, began + i * seconds / count - time.monotonic()))
                started = time.thread_time()
                daemon.web.exposition.render()
                gen_cpu.append(time.thread_time() - started)
            await asyncio.sleep(max(0.0, began + seconds - time.monotonic()))
        else:
            n = 0 if kind == "idle" else count
            proc = await asyncio.create_subprocess_exec(
                *(sys.executable, "-c", CLIENT, url, str(n), str(seconds)),
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await proc.communicate()
            for line in out.decode().splitlines():
                wall, size, samples = line.split()
                scrapes.append((float(wall), int(size), int(samples)))
        used, wall = cpu() - before, time.monotonic() - began
    finally:
        if kind == "sketch":
            del daemon.web.exposition.render  # the class's own again
        gc.unfreeze()
    full = [p for generation, p in watch.pauses if generation == 2]
    return {
        "cpu": used,
        "wall": wall,
        "late": list(lateness),
        "blocked": log.blocked() - blocked,
        "scrapes": scrapes,
        "gen_cpu": gen_cpu,
        "gc": sum(p for _, p in watch.pauses),
        "gc2": len(full),
        "gc2_max": max(full, default=0.0),
    }


def thread_cpu(fn: Callable[[], object], times: int = 3, *, collect: bool = True) -> float:
    """Median thread CPU of ``fn()``, with the garbage collector on or off."""
    took = []
    for _ in range(times):
        if not collect:
            gc.disable()
        try:
            started = time.thread_time()
            fn()
            took.append(time.thread_time() - started)
        finally:
            gc.enable()
    return statistics.median(took)


def profile_scrape(daemon: Daemon, samples: int) -> None:
    """Where one generate_latest's time goes: GC, the collector, prometheus_client's text."""
    assert daemon.web is not None
    registry = CollectorRegistry(auto_describe=False)  # everything, without the cache
    registry.register(JobCollector(daemon.view))
    registry.register(DaemonCollector(daemon.view))
    collector = JobCollector(daemon.view)

    def us(seconds: float) -> str:
        return f"{seconds * 1000:.0f} ms ({seconds / samples * 1e6:.2f} us/sample)"

    whole = thread_cpu(lambda: generate_latest(registry))
    no_gc = thread_cpu(lambda: generate_latest(registry), collect=False)
    families = thread_cpu(lambda: list(collector.collect()), collect=False)
    print(
        f"one generate_latest (thread CPU, median of 3): {us(whole)}; garbage collection"
        f" {us(whole - no_gc)}; with GC off: collector (building the families)"
        f" {us(families)}, prometheus_client's text formatting {us(no_gc - families)}"
    )
    runs = next(f for f in collector.collect() if f.name == "runner_job_runs")
    zero = sum(1 for s in runs.samples if s.value == 0)
    print(
        f"runner_job_runs_total is {len(runs.samples)} of the {samples} samples,"
        f" {zero} of them 0 (a status the job never had)"
    )
    profiler = cProfile.Profile()
    gc.disable()
    profiler.enable()
    generate_latest(registry)
    profiler.disable()
    gc.enable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    total = sum(tt for _, _, tt, _, _ in stats.stats.values())  # type: ignore[attr-defined]
    cumulative: dict[str, float] = {}
    for (path, _, func), (_, _, _, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        key = f"{Path(path).parent.name}/{Path(path).name}:{func}"
        cumulative[key] = cumulative.get(key, 0.0) + ct
    print(f"cProfile of one generate_latest, GC off ({total:.2f} s under the profiler):")
    for key in (
        "runner/metrics.py:collect",
        "prometheus_client/metrics_core.py:add_metric",
        "prometheus_client/exposition.py:sample_line",
        "prometheus_client/exposition.py:<listcomp>",
        "openmetrics/exposition.py:escape_label_name",
        "openmetrics/exposition.py:_escape",
        "prometheus_client/utils.py:floatToGoString",
        "openmetrics/exposition.py:escape_metric_name",
    ):
        print(f"  {cumulative.get(key, 0.0) / total:>4.0%} of it in {key} (with what it calls)")


async def metrics_bench(args: argparse.Namespace, tmp: Path, log: LogCounter) -> None:
    idle = args.jobs - args.busy
    path = write_config(
        tmp / "metrics.yaml",
        sleep_jobs("busy", args.busy, args.interval) + sleep_jobs("idle", idle, 3600),
    )
    started = time.perf_counter()
    config = load_config(path)
    loaded = time.perf_counter() - started
    late = Lateness(config)
    daemon = Daemon(late.timed(config), sinks=[])
    late.handles = daemon.scheduler.handles
    watch = GcWatch()
    kinds = ["idle", "scraped", "gc frozen", "sketch", "on loop"]
    async with serving(daemon):
        assert daemon.web is not None
        print(
            f"\n/metrics: {args.jobs} sleep jobs, {args.busy} every {args.interval:g} s and"
            f" {idle} every 1 h (config loaded in {loaded:.1f} s, daemon running after"
            f" {time.perf_counter() - started:.1f} s); {args.rounds} rounds of"
            f" {len(kinds)} x {args.seconds:g} s windows, {args.scrapes} scrapes in each"
        )
        await asyncio.sleep(2.0)  # first runs are spread over 1 s: every job has a result
        # Nothing runs on the loop between these two: the same states.
        expected, sketched = daemon.web.exposition.render(), Sketch(daemon)()
        lag = re.compile(rb"^runner_loop_lag_seconds .*$", re.MULTILINE)
        for want, got in zip(
            lag.sub(b"", expected).splitlines(), lag.sub(b"", sketched).splitlines(), strict=True
        ):
            if want != got:
                raise RuntimeError(f"the sketch wrote {got!r} where generate_latest {want!r}")
        await window("scraped", daemon, late.values, watch, log, 1, 1.0)  # warm-up
        results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
        for _ in range(args.rounds):
            for kind in kinds:
                results[kind].append(
                    await window(kind, daemon, late.values, watch, log, args.scrapes, args.seconds)
                )
        print(
            f"{'window':<10} {'CPU s':>6} {'wall s':>6} {'runs':>6} {'late p50':>9}"
            f" {'p99 ms':>8} {'max ms':>7} {'GC s':>5} {'full GCs':>8} {'longest ms':>10}"
            f" {'loop.blocked':>12}"
        )
        for kind, rounds in results.items():
            for r in rounds:
                print(
                    f"{kind:<10} {r['cpu']:>6.2f} {r['wall']:>6.2f} {len(r['late']):>6}"
                    f" {pct(r['late'], 50):>9.2f} {pct(r['late'], 99):>8.2f}"
                    f" {max(r['late'], default=0) * 1000:>7.1f} {r['gc']:>5.2f}"
                    f" {r['gc2']:>8} {r['gc2_max'] * 1000:>10.0f} {r['blocked']:>12}"
                )
        print(f"medians over {args.rounds} rounds:")
        idle_rate = statistics.median(r["cpu"] / r["wall"] for r in results["idle"])
        idle_p99 = statistics.median(pct(r["late"], 99) for r in results["idle"])
        idle_gc = statistics.median(r["gc"] / r["wall"] for r in results["idle"])
        for kind, rounds in results.items():
            p50 = statistics.median(pct(r["late"], 50) for r in rounds)
            p99 = statistics.median(pct(r["late"], 99) for r in rounds)
            line = f"  {kind:<10} late p50 {p50:5.2f} ms, p99 {p99:6.2f} ms (x{p99 / idle_p99:.0f})"
            if kind != "idle":
                # Above the idle window's CPU rate, over this window's length.
                extra = statistics.median(r["cpu"] - idle_rate * r["wall"] for r in rounds)
                gc_each = statistics.median(r["gc"] - idle_gc * r["wall"] for r in rounds)
                gc_each /= args.scrapes
                line += (
                    f"; CPU per scrape {extra / args.scrapes * 1000:4.0f} ms"
                    f" (GC {gc_each * 1000:.0f} ms of it)"
                )
            print(line)
        walls = {k: [s[0] for r in results[k] for s in r["scrapes"]] for k in kinds[1:4]}
        size, samples = results["scraped"][-1]["scrapes"][-1][1:]
        gen = [g for r in results["on loop"] for g in r["gen_cpu"]]
        print(
            f"/metrics body {size / 1e6:.2f} MB, {samples} samples; GET /metrics wall median: "
            + ", ".join(f"{k} {statistics.median(w) * 1000:.0f} ms" for k, w in walls.items())
            + f"; generate_latest on the loop {statistics.median(gen) * 1000:.0f} ms thread CPU"
        )
        profile_scrape(daemon, samples)
        cached = Sketch(daemon, cache=True)
        cached()
        await asyncio.sleep(args.interval)  # every busy job has a new JobState
        changed = thread_cpu(cached, 1)
        print(
            f"the sketch, thread CPU (median of 3): every job rendered"
            f" {thread_cpu(Sketch(daemon)) * 1000:.0f} ms; with its cache, {args.busy}"
            f" changed jobs of {args.jobs} re-rendered {changed * 1000:.0f} ms, none"
            f" {thread_cpu(cached) * 1000:.0f} ms"
        )


# --------------------------------------------------------------------------- the page


class FirstResults:
    """A result sink that tells when every job has had a result."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self.seen: set[str] = set()
        self.all_in = asyncio.Event()

    async def start(self, exit_stack: AsyncExitStack) -> None:
        pass

    def submit(self, record: RunRecord, state: JobState) -> None:
        self.seen.add(record.job)
        if len(self.seen) == self.jobs:
            self.all_in.set()


def fill_bars(daemon: Daemon, results: int) -> None:
    """Publish synthetic results through the hub until each bar holds ``results``."""
    now = time.time()
    for name, state in daemon.hub.states.items():
        status = state.last.status if state.last is not None else Status.OK
        for i in range(results - len(state.recent)):
            daemon.hub.publish(
                RunRecord(
                    job=name,
                    plugin=state.plugin,
                    status=status,
                    message=None if status is Status.OK else "connection refused",
                    fields={},
                    started_at=now - i,
                    finished_at=now - i,
                    duration_ms=1.0,
                )
            )


async def page_loads(browser: Any, base: str, jobs: int, loads: int) -> list[dict[str, float]]:
    timings = []
    for _ in range(loads + 1):  # the first is the cold one
        context = await browser.new_context()
        page = await context.new_page()
        started = time.perf_counter()
        await page.goto(base + "/")
        await page.wait_for_function(f"document.querySelectorAll('.job').length === {jobs}")
        total = time.perf_counter() - started
        api = await page.evaluate(
            "performance.getEntriesByType('resource')"
            ".filter(e => e.name.includes('/api/'))"
            ".map(e => [e.responseEnd, e.encodedBodySize])"
        )
        await context.close()
        timings.append(
            {
                "total": total,
                "api_done": max(end for end, _ in api) / 1000,  # ms since navigation start
                "api_bytes": sum(size for _, size in api),
            }
        )
    return timings


async def page_bench(args: argparse.Namespace, tmp: Path) -> None:
    from playwright.async_api import async_playwright

    half = args.page_jobs // 2
    path = write_config(
        tmp / "page.yaml",
        sleep_jobs("job", args.page_jobs - half, args.page_interval)
        + failing_jobs(half, args.page_interval),
    )
    config = load_config(path)
    first = FirstResults(len(config.jobs))
    daemon = Daemon(config, sinks=[first])
    async with serving(daemon):
        assert daemon.web is not None
        async with asyncio.timeout(60):
            await first.all_in.wait()
        failing = sum(s.is_failing for s in daemon.hub.states.values())
        base = f"http://127.0.0.1:{daemon.web.port}"
        print(
            f"\nstatus page: {args.page_jobs} jobs ({failing} failing) every"
            f" {args.page_interval:g} s; headless Chromium ({find_chromium()}),"
            f" goto / until {args.page_jobs} .job cards; fresh context per load"
        )
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=find_chromium(), args=list(CHROMIUM_ARGS)
            )
            try:
                medians: list[tuple[int, float]] = []
                for bars in ("first results", "full bars"):
                    if bars == "full bars":
                        fill_bars(daemon, daemon.hub.keep_recent)
                    cells = sum(len(s.recent) for s in daemon.hub.states.values())
                    cold, *warm = await page_loads(browser, base, args.page_jobs, args.loads)
                    totals = [t["total"] for t in warm]
                    medians.append((cells, statistics.median(totals)))
                    api = statistics.median(t["api_done"] for t in warm)
                    print(
                        f"  {bars:<14} ({cells} bar cells, API bodies"
                        f" {warm[0]['api_bytes'] / 1e6:.2f} MB): cold {cold['total']:.2f} s;"
                        f" {args.loads} loads {', '.join(f'{t:.2f}' for t in totals)} s,"
                        f" median {statistics.median(totals):.2f} s (API answers in by"
                        f" {api:.2f} s)"
                    )
            finally:
                await browser.close()
        (few, fast), (many, slow) = medians
        print(f"  each bar cell: {(slow - fast) / (many - few) * 1e6:.1f} us of load time")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs for /metrics")
    parser.add_argument(
        "--busy", type=int, default=1000, help="of those, jobs run every --interval (the rest 1 h)"
    )
    parser.add_argument("--interval", type=float, default=1.0, help="the busy jobs' interval, s")
    parser.add_argument("--seconds", type=float, default=8.0, help="each window, s")
    parser.add_argument("--scrapes", type=int, default=4, help="scrapes per window")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--page-jobs", type=int, default=1000)
    parser.add_argument("--page-interval", type=float, default=10.0)
    parser.add_argument("--loads", type=int, default=5, help="page loads after the cold one")
    parser.add_argument("--skip-page", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    log = LogCounter()
    configure_logging("json", "warning", log)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        await metrics_bench(args, Path(tmp), log)
        if not args.skip_page:
            await page_bench(args, Path(tmp))
    print(f"\n(bench ran {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())

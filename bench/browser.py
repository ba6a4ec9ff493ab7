"""Page checks four ways: a browser launched per check, `isolation: context`,
`isolation: page`, and ``runner run`` of a config of page-title checks.

Usage::

    .venv/bin/python bench/browser.py [--checks 40] [--trials 5] [--jobs 4]
        [--concurrency 1,2] [--ways launch,context,page,run] [--before COMMIT]
        [--smoke] [--json PATH]

Every check loads the same small local page (served by a child process whose
CPU is not counted) and reads its title. The ways:

  launch    the baseline: a plain Playwright script that launches Chromium
            for every check (new page, goto, title, close the browser). It
            starts Playwright's driver once, not per check, which flatters it.
  context   runner's page-title (the default, ``isolation: context``) through
            ``run_in_task`` with one shared ``Resources``, as the daemon runs
            it: one browser, a fresh context per check.
  page      the same with ``isolation: page``: a fresh page per check in a
            context kept per job, created on the job's first run in the trial
            (and counted).
  run       what a user runs (issue 23): ``runner run CONFIG`` of a config
            of N page-title jobs of the page (default options, the default
            config: SQLite history on, in a fresh ``STATE_DIRECTORY``; JSON
            result lines), a process of its own timed from its start to its
            exit: start-up, imports, Playwright's driver and the browser
            launch are all in it. It runs its checks as the daemon does, at
            most two pages at once (the browser's page slots), so it is one
            row whatever ``--concurrency`` says, compared with launch at
            every concurrency measured. With ``--before COMMIT``, also
            ``run@COMMIT``: the same with runner's ``src`` at COMMIT.

Chromium is launched as the project launches it (``find_chromium()``,
``CHROMIUM_ARGS``, headless). For context and page the browser is launched
before the clock starts, as a daemon launches it once; the checks of a trial
go round-robin over ``--jobs`` job names, so runs of one job do not overlap,
as in the daemon. ``--concurrency 2`` runs two checks at a time, as the
daemon's two browser page slots allow.

CPU is that of the whole process tree, Python, Playwright's node driver and
every Chromium process: this process's and its reaped children's
``getrusage``, plus ``utime+stime+cutime+cstime`` from ``/proc/PID/stat`` of
every live (or zombie) descendant. This process makes itself a child
subreaper, so the processes Chromium orphans come to it and are counted; it
reaps them between trials. The page server's subtree is left out.

Trials interleave: each round runs every way at every concurrency, in an
order rotated per round, so the machine's noise hits them alike. Reported:
checks/s and CPU ms per check, median (min-max) over the rounds, and the
ratios of the medians against launch-per-check.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import harness  # bench/harness.py (the script's folder is on sys.path)

from runner.builtins.browser.page_title import PageTitle
from runner.builtins.browser.session import CHROMIUM_ARGS, find_chromium
from runner.execution import AbandonedRuns, run_in_task
from runner.plugin import Status
from runner.resources import Resources

TITLE = "Bench page"
WAYS = ("launch", "context", "page", "run")
#: Pages ``runner run`` opens at once: the browser's page slots (MAX_OPEN_PAGES).
RUN_AT_ONCE = 2
RUNNER = str(Path(sys.executable).with_name("runner"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_CHILD_SUBREAPER = 36

SERVER = textwrap.dedent(
    f"""
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    BODY = (
        b"<!doctype html><html><head><title>{TITLE}</title>"
        b"<style>body {{ font: 16px sans-serif }}</style></head>"
        b"<body><h1>{TITLE}</h1><p>" + b"A small page. " * 40 + b"</p></body></html>"
    )

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path != "/":  # the browser's own /favicon.ico
                self.send_response(204)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()
    """
)


# --- CPU of the process tree -------------------------------------------------


def _proc_table() -> dict[int, tuple[int, str, str, float]]:
    """pid -> (parent pid, state, name, utime+stime+cutime+cstime in seconds)."""
    table: dict[int, tuple[int, str, str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                stat = file.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2 :].split()
        # rest[0] is field 3 (state); utime..cstime are fields 14..17.
        ticks = sum(int(value) for value in rest[11:15])
        table[int(entry)] = (int(rest[1]), rest[0], name, ticks / CLK_TCK)
    return table


def _descendants(table: dict[int, tuple[int, str, str, float]], skip: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in skip and child not in found:
                found.add(child)
                todo.append(child)
    return found


def tree_cpu(skip: set[int]) -> float:
    """CPU seconds used so far by this process and everything it started but ``skip``."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    table = _proc_table()
    return total + sum(table[pid][3] for pid in _descendants(table, skip))


def reap_adopted_orphans(ours: set[int]) -> int:
    """Wait for zombie children this process did not start (Chromium's orphans)."""
    reaped = 0
    me = os.getpid()
    for pid, (ppid, state, name, _) in _proc_table().items():
        if ppid == me and state == "Z" and pid not in ours and not name.startswith("node"):
            try:
                os.waitpid(pid, os.WNOHANG)
                reaped += 1
            except ChildProcessError:
                pass
    return reaped


# --- the three ways ----------------------------------------------------------


@dataclass
class Trial:
    way: str
    concurrency: int
    seconds: float
    cpu: float
    failed: int
    checks: int

    @property
    def per_second(self) -> float:
        return self.checks / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu * 1000 / self.checks


@dataclass
class Bench:
    url: str
    checks: int
    jobs: int
    skip: set[int]
    chromium: str
    folder: Path
    sources: dict[str, Path | None] = field(default_factory=dict)
    trial_no: int = 0
    results: list[Trial] = field(default_factory=list)

    async def _drive(
        self, concurrency: int, one: Callable[[int], Awaitable[bool]]
    ) -> tuple[float, float, int]:
        """Run ``one(i)`` for every check, ``concurrency`` at a time: wall s, CPU s, failures."""
        queue = iter(range(self.checks))
        failed = 0

        async def worker() -> None:
            nonlocal failed
            for i in queue:
                if not await one(i):
                    failed += 1

        cpu0, t0 = tree_cpu(self.skip), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        t1, cpu1 = time.perf_counter(), tree_cpu(self.skip)
        return t1 - t0, cpu1 - cpu0, failed

    async def launch(self, concurrency: int) -> tuple[float, float, int]:
        from playwright.async_api import async_playwright

        async with async_playwright() as playwright:

            async def one(_: int) -> bool:
                browser = await playwright.chromium.launch(
                    headless=True, executable_path=self.chromium, args=CHROMIUM_ARGS
                )
                try:
                    page = await browser.new_page()
                    await page.goto(self.url, wait_until="load")
                    return await page.title() == TITLE
                finally:
                    await browser.close()

            return await self._drive(concurrency, one)

    async def runner(self, concurrency: int, isolation: str) -> tuple[float, float, int]:
        resources = Resources()
        abandoned = AbandonedRuns()
        self.trial_no += 1
        options = {"url": self.url, "expect_title": TITLE, "isolation": isolation}
        check = PageTitle(PageTitle.Options.model_validate(options))

        async def one(i: int) -> bool:
            record = await run_in_task(
                check,
                job=f"t{self.trial_no}-job{i % self.jobs}",
                plugin="page-title",
                timeout=30,
                resources=resources,
                abandoned=abandoned,
            )
            return record.result.status is Status.OK

        try:
            # The daemon launches its browser once: not part of the checks.
            warm = PageTitle(PageTitle.Options.model_validate({"url": self.url}))
            await run_in_task(
                warm,
                job="warm-up",
                plugin="page-title",
                timeout=30,
                resources=resources,
                abandoned=abandoned,
            )
            return await self._drive(concurrency, one)
        finally:
            await resources.aclose()

    def config(self) -> Path:
        """N page-title jobs of the page, default options, the default config."""
        path = self.folder / "runner.yaml"
        if not path.exists():
            first = (
                "  - {name: page-0, plugin: page-title, timeout: 30s, options: &page "
                f'{{url: "{self.url}", expect_title: "{TITLE}"}}}}\n'
            )
            rest = "".join(
                f"  - {{name: page-{i}, plugin: page-title, timeout: 30s, options: *page}}\n"
                for i in range(1, self.checks)
            )
            path.write_text("jobs:\n" + first + rest)
        return path

    async def run_cli(self, src: Path | None) -> tuple[float, float, int]:
        """``runner run`` of the config, a process of its own: wall s, CPU s, failures."""
        self.trial_no += 1
        state = self.folder / f"state-{self.trial_no}"
        state.mkdir()
        env = {**os.environ, "STATE_DIRECTORY": str(state)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed runner has its .pyc files
        program = [RUNNER]
        if src is not None:
            program = [sys.executable, "-m", "runner"]
            env["PYTHONPATH"] = str(src)
        argv = [*program, "run", "--log-format", "json", str(self.config())]
        with tempfile.TemporaryFile(dir=self.folder) as out:
            cpu0, t0 = tree_cpu(self.skip), time.perf_counter()
            child = await asyncio.create_subprocess_exec(
                *argv, stdout=out, stderr=subprocess.STDOUT, env=env
            )
            code = await child.wait()
            t1 = time.perf_counter()
            reap_adopted_orphans(self.skip)
            cpu1 = tree_cpu(self.skip)
            out.seek(0)
            lines = out.read().splitlines()
        passed = sum(1 for line in lines if b'"job.finished"' in line and b'"status":"ok"' in line)
        if code not in (0, 1) or not any(b'"run.finished"' in line for line in lines):
            tail = b"\n".join(lines[-20:]).decode(errors="replace")
            raise SystemExit(f"runner run exited {code}:\n{tail}")
        return t1 - t0, cpu1 - cpu0, self.checks - passed

    async def trial(self, way: str, concurrency: int) -> Trial:
        if way == "launch":
            seconds, cpu, failed = await self.launch(concurrency)
        elif way.startswith("run"):
            seconds, cpu, failed = await self.run_cli(self.sources[way])
        else:
            seconds, cpu, failed = await self.runner(concurrency, way)
        reap_adopted_orphans(self.skip)
        trial = Trial(way, concurrency, seconds, cpu, failed, self.checks)
        self.results.append(trial)
        print(
            f"  {way:8} x{concurrency}: {trial.per_second:5.2f} checks/s, "
            f"{trial.cpu_ms:6.1f} CPU ms/check, {failed} failed",
            flush=True,
        )
        return trial


def _chromium_version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"


def _spread(values: list[float], fmt: str) -> str:
    return (
        f"{format(statistics.median(values), fmt)} "
        f"({format(min(values), fmt)}-{format(max(values), fmt)})"
    )


def report(bench: Bench, ways: list[str], concurrencies: list[int]) -> None:
    print()
    print(
        "| way | at once | checks/s median (min-max) | CPU ms/check median (min-max) "
        "| throughput vs launch | CPU/check vs launch | failed |"
    )
    print("|---|---|---|---|---|---|---|")
    for concurrency in concurrencies:
        base = [t for t in bench.results if t.way == "launch" and t.concurrency == concurrency]
        base_rate = statistics.median(t.per_second for t in base) if base else None
        base_cpu = statistics.median(t.cpu_ms for t in base) if base else None
        for way in ways:
            if way.startswith("run"):
                continue
            trials = [t for t in bench.results if t.way == way and t.concurrency == concurrency]
            print(_row(way, str(concurrency), trials, base_rate, base_cpu))
    runs = [way for way in ways if way.startswith("run")]
    if not runs:
        return
    print()
    print(
        f"runner run of {bench.checks} page-title checks (the whole process, "
        f"{RUN_AT_ONCE} pages at once) against launch one at a time and {RUN_AT_ONCE} at a time:"
    )
    print()
    print(
        "| way | against | checks/s median (min-max) | CPU ms/check median (min-max) "
        "| throughput vs launch | CPU/check vs launch | failed |"
    )
    print("|---|---|---|---|---|---|---|")
    for concurrency in concurrencies:
        base = [t for t in bench.results if t.way == "launch" and t.concurrency == concurrency]
        if not base:
            continue
        base_rate = statistics.median(t.per_second for t in base)
        base_cpu = statistics.median(t.cpu_ms for t in base)
        for way in runs:
            trials = [t for t in bench.results if t.way == way]
            print(_row(way, f"launch x{concurrency}", trials, base_rate, base_cpu))
        # Round by round: each run's throughput over the same round's launch.
        for way in runs:
            ratios = [
                run.per_second / launch.per_second
                for run, launch in zip(
                    [t for t in bench.results if t.way == way], base, strict=False
                )
            ]
            if ratios:
                print(
                    f"| {way} | launch x{concurrency}, round by round | "
                    f"{_spread(ratios, '.2f')}x | | | | |"
                )


def _row(
    way: str,
    at_once: str,
    trials: list[Trial],
    base_rate: float | None,
    base_cpu: float | None,
) -> str:
    rates = [t.per_second for t in trials]
    cpus = [t.cpu_ms for t in trials]
    rate_ratio = f"{statistics.median(rates) / base_rate:.2f}x" if base_rate else "-"
    cpu_ratio = f"{statistics.median(cpus) / base_cpu:.2f}x" if base_cpu else "-"
    return (
        f"| {way} | {at_once} | {_spread(rates, '.2f')} | {_spread(cpus, '.0f')} "
        f"| {rate_ratio} | {cpu_ratio} | {sum(t.failed for t in trials)} |"
    )


async def main() -> None:
    parser = harness.arguments(__doc__.split("\n", 1)[0])
    parser.add_argument("--checks", type=int, default=40, help="checks per trial")
    parser.add_argument("--rounds", type=int, default=None, help="the same as --trials")
    parser.add_argument("--jobs", type=int, default=4, help="job names the checks go over")
    parser.add_argument("--concurrency", default="1,2", help="checks at once, comma-separated")
    parser.add_argument(
        "--ways", default=",".join(WAYS), help="comma-separated: " + ", ".join(WAYS)
    )
    parser.add_argument(
        "--before", metavar="COMMIT", help="also `runner run` with runner's src at COMMIT"
    )
    args = parser.parse_args()
    args.rounds = args.rounds or args.trials
    if args.smoke:
        args.checks, args.rounds, args.concurrency = 4, 1, "1"
    ways = [w for w in args.ways.split(",") if w]
    unknown = set(ways) - set(WAYS)
    if unknown:
        parser.error(f"unknown ways: {', '.join(sorted(unknown))}")
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]

    # Chromium's orphans come back here, so their CPU is counted.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("warning: could not become a child subreaper; orphans' CPU is not counted")

    port = harness.free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])  # noqa: ASYNC220
    temp = tempfile.TemporaryDirectory(prefix="runner-bench-browser-")
    try:
        harness.wait_for_port(port)
        chromium = find_chromium()
        folder = Path(temp.name)
        bench = Bench(
            f"http://127.0.0.1:{port}/", args.checks, args.jobs, {server.pid}, chromium, folder
        )
        if "run" in ways:
            bench.sources["run"] = None
            if args.before:
                name = f"run@{args.before}"
                bench.sources[name] = harness.source_at(args.before, folder / name)
                ways.append(name)
        load = os.getloadavg()
        print(
            f"{os.cpu_count()} CPUs ({harness.machine()['cpu']}), {platform.platform()}, "
            f"Python {platform.python_version()}, playwright {version('playwright')}, "
            f"{_chromium_version(chromium)} ({chromium}); "
            f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        )
        print(
            f"{args.checks} checks per trial, {args.rounds} rounds, "
            f"{args.jobs} jobs, at once: {concurrencies}"
        )
        # runner run is one row whatever the concurrency: its own page slots.
        plan = [(way, c) for c in concurrencies for way in ways if not way.startswith("run")]
        plan += [(way, RUN_AT_ONCE) for way in ways if way.startswith("run")]
        for way in ways:  # caches warm (bytecode, the page cache), not counted
            if way.startswith("run"):
                await bench.run_cli(bench.sources[way])
        for round_no in range(args.rounds):
            print(f"round {round_no + 1}", flush=True)
            shift = round_no % len(plan)
            for way, concurrency in plan[shift:] + plan[:shift]:
                await bench.trial(way, concurrency)
        report(bench, ways, concurrencies)
        harness.write_results(
            "browser",
            args,
            harness.machine(),
            {
                "chromium": _chromium_version(chromium),
                "results": {
                    (way if way.startswith("run") else f"{way}_c{c}"): {
                        "cpu_ms_per_check": [t.cpu_ms for t in trials],
                        "checks_per_s": [t.per_second for t in trials],
                        "failed": sum(t.failed for t in trials),
                    }
                    for way, c in plan
                    for trials in [
                        [t for t in bench.results if t.way == way and t.concurrency == c]
                    ]
                },
            },
        )
        load = os.getloadavg()
        print(f"\nload average at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        server.terminate()
        server.wait(10)
        temp.cleanup()


if __name__ == "__main__":
    asyncio.run(main())

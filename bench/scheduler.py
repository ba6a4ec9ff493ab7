"""runner's scheduler against APScheduler 3 and a bare asyncio loop, each a process of its own.

    .venv/bin/python bench/scheduler.py [--jobs 1000,10000] [--seconds 20] [--trials 5]
        [--before COMMIT] [--variants runner,runner@COMMIT]

N jobs named ``job-0`` ... run every 1 s, each run an async no-op
(``asyncio.sleep(0)``), their phases spread over the second the way runner
spreads them (CRC-32 of the name). Variants, started by this script and
stopped with SIGTERM after the window:

- ``runner``: the real daemon, ``runner serve --log-format json CONFIG`` with
  N ``sleep`` jobs (``seconds: 0``), history off, every result written as its
  JSON line to a file (stdout, on /dev/shm when there is one).
- ``runner+sqlite``: the same with SQLite history on (a fresh file).
- ``runner+uvloop``: the same as ``runner`` with ``--loop uvloop``; present
  only when ``runner serve --help`` lists ``--loop``.
- ``runner+cron``: the same as ``runner`` with ``cron: "* * * * * *"`` on
  every job instead of the interval (issue 20): every job due at the same
  whole second, as a cron line says.
- ``runner+cron+jitter``: the same with ``jitter: 1s``, each job's runs
  delayed by its stable offset in [0, 1 s): spread as the interval jobs are.
- ``runner@COMMIT``: with ``--before COMMIT``, ``runner`` as it was at COMMIT
  (its ``src`` from ``git archive``, harness.source_at, on PYTHONPATH), side
  by side; the ratios are then against it.
- ``bare``: ``loop.call_at`` + ``create_task`` per run (bench/scheduler_peers.py),
  the floor for any asyncio scheduler.
- ``apscheduler``: APScheduler 3's ``AsyncIOScheduler``, one
  ``IntervalTrigger(seconds=1)`` job each, logging nothing.

Each variant gets a warm-up after it is ready (every first run made, the
garbage collector's generations filled), then a window of ``--seconds``.
Measured from outside through /proc (bench/harness.py): CPU of the whole
process tree over the window, per 1,000 runs made in it, and the tree's RSS at
the window's end. From each run's start (runner: the result line's
``timestamp`` minus its ``duration_ms``; the peers record ``time.time()`` as
the run begins, into preallocated arrays dumped at SIGTERM, whose size is
taken off their RSS):

- **lateness**: how long after its slot a run started. A job's slots are
  ``t0 + k`` seconds; ``t0`` is not visible from outside runner, so it is
  taken as the job's earliest start on its grid. Lateness is thus counted
  from the job's best run, and a constant per-job delay is left out, alike
  for every variant. On the bare loop, whose slots are known, this read p50
  0.41 / p99 1.13 ms against the true 0.57 / 1.23 ms (1,000 jobs): about
  0.1-0.15 ms less, which matters only next to the floor.
  Lateness is read right while a job's runs stay within some stretch of
  the second shorter than about 0.9 s (the rest of it empty); a run later
  than 1 s counts as its slot missed plus a run in the next. A cron job's
  slots are known (whole seconds, plus its jitter offset): its lateness is
  counted from them, constant delays included.
- **gap**: time between consecutive starts of one job, minus 1 s (what a
  check's user sees: how regular the checks are).
- **missing**: slots in the window (N x seconds) with no run.
- **others' load**: cores the rest of the machine kept busy during the
  window (/proc/stat less the variant's own CPU): on a shared machine, what
  the variant competed with.

The variants alternate round by round (harness.Trials); read the ratios.
"""

from __future__ import annotations

import array
import concurrent.futures
import contextlib
import datetime
import functools
import itertools
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BENCH,
    CLK_TCK,
    PYTHON,
    Trials,
    arguments,
    describe,
    machine,
    percentile,
    process,
    source_at,
    tree_cpu,
    tree_rss,
    write_results,
)

RUNNER = str(Path(PYTHON).with_name("runner"))
PEERS = str(BENCH / "scheduler_peers.py")
#: With --postgresql: tests/postgres.py's server of our own (default+postgresql).
POSTGRES: Any = None
#: After the window, how long the variant runs on so the window's last runs
#: have a successor (their gap) and land in the output.
TAIL = 1.2
#: --prefill: runs in the default variants' SQLite history before each trial,
#: and the folder its templates are made in (removed at the end).
PREFILL = 0
PREFILL_DIR: Path | None = None

MEASURES: list[tuple[str, str]] = [
    ("cpu_per_1000", "CPU s / 1,000 runs"),
    ("late_p50_ms", "late p50 ms"),
    ("late_p99_ms", "late p99 ms"),
    ("late_max_ms", "late max ms"),
    ("gap_p50_ms", "gap-1s p50 ms"),
    ("gap_p99_ms", "gap-1s p99 ms"),
    ("gap_max_ms", "gap-1s max ms"),
    ("missing", "missing runs"),
    ("rss_mib", "RSS MiB"),
    ("server_cpu_per_1000", "PostgreSQL CPU s / 1,000 runs"),
    ("others_cores", "others' load, cores"),
]
RATIOS = ("cpu_per_1000", "late_p99_ms", "gap_p99_ms", "rss_mib")


# --- what a variant is -----------------------------------------------------------


@dataclass
class Variant:
    """How to start one scheduler with N jobs and read its runs' starts after."""

    name: str
    #: (jobs, work dir, capacity seconds) -> argv
    argv: Callable[[int, Path, float], list[str]]
    #: the output line that says every job is scheduled
    ready: bytes
    #: (stdout file, work dir) -> (job numbers, start times, bytes to take off RSS)
    starts: Callable[[Path, Path], tuple[Sequence[int], Sequence[float], int]]
    #: added to the environment (runner@COMMIT: its PYTHONPATH)
    env: Mapping[str, str] | None = None
    #: (jobs) -> each job's due times' place in the second, when known (cron)
    phases: Callable[[int], Sequence[float]] | None = None
    #: the CPU seconds of a server the variant writes to (PostgreSQL), if any
    server_cpu: Callable[[], float] | None = None


def scratch_dir() -> str | None:
    """/dev/shm when there is one: writing N result lines a second to a disk
    would measure the disk."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


#: The cron line of the cron variants: every second.
EVERY_SECOND = "* * * * * *"


def runner_config(
    jobs: int, folder: Path, history: str | None, cron: bool = False, jitter: bool = False
) -> Path:
    """N sleep jobs (0 s) every 1 s (or on the cron line ``* * * * * *``),
    written with an alias so that 32,000 jobs stay within the config's
    bounds on values."""
    if history == "sqlite":
        head = f"history:\n  path: {folder / 'history.sqlite3'}\n"
    elif history == "default":
        head = ""  # runner's default: SQLite under the state folder (STATE_DIRECTORY)
    elif history == "postgresql":
        assert POSTGRES is not None, "--postgresql starts the server"
        head = f"history:\n  url: {POSTGRES.create_database()}\n"  # a fresh database each trial
    else:
        head = "history:\n  enabled: false\n"
    lines = [head, "defaults:\n  interval: 1s\n" + ("  jitter: 1s\n" if jitter else ""), "jobs:\n"]
    if cron:
        lines.append(
            f'  - {{name: job-0, plugin: sleep, cron: &line "{EVERY_SECOND}", '
            "options: &zero {seconds: 0}}\n"
        )
        lines += [
            f"  - {{name: job-{i}, plugin: sleep, cron: *line, options: *zero}}\n"
            for i in range(1, jobs)
        ]
    else:
        lines.append("  - {name: job-0, plugin: sleep, options: &zero {seconds: 0}}\n")
        lines += [f"  - {{name: job-{i}, plugin: sleep, options: *zero}}\n" for i in range(1, jobs)]
    text = "".join(lines)
    path = folder / "runner.yaml"
    path.write_text(text)
    return path


@functools.cache
def runner_loops() -> tuple[str, ...]:
    """The --loop choices runner serve offers (none before it had the flag)."""
    help_text = subprocess.run(
        [RUNNER, "serve", "--help"], capture_output=True, text=True, check=False
    ).stdout
    return ("uvloop",) if "--loop" in help_text and "uvloop" in help_text else ()


def runner_starts(out: Path, _: Path) -> tuple[array.array[int], array.array[float], int]:
    """Each run's start from its result line: ``started_at`` if the line has
    it, else its ``timestamp`` (taken as the result is logged, right after the
    run) minus ``duration_ms``."""
    jobs, starts = array.array("i"), array.array("d")
    with out.open("rb") as lines:
        for raw in lines:
            if b'"job.finished"' not in raw:
                continue
            line = json.loads(raw)
            if line.get("started_at") is not None:
                start = _wall(line["started_at"])
            else:
                start = _wall(line["timestamp"]) - line["duration_ms"] / 1000
            jobs.append(int(line["job"].removeprefix("job-")))
            starts.append(start)
    return jobs, starts, 0


def _wall(value: str | float) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.datetime.fromisoformat(value).timestamp()


def runner_variant(
    name: str,
    *,
    history: str | None = None,
    loop: str | None = None,
    src: Path | None = None,
    cron: bool = False,
    jitter: bool = False,
    default: bool = False,
) -> Variant:
    """runner serve; with ``src``, that older ``src`` folder's runner instead;
    ``cron``: every job on the line ``* * * * * *`` (``jitter``: of 1 s);
    ``default``: with no flags (``history``: "default" for no ``history:``
    section at all)."""

    def argv(jobs: int, folder: Path, _: float) -> list[str]:
        program = [PYTHON, "-m", "runner"] if src is not None else [RUNNER]
        if default:
            # As shipped: no flags (the log is JSON off a terminal, the loop
            # uvloop when installed); the state folder is the trial's, as
            # systemd's StateDirectory= would give it (`env` execs: one process).
            config = runner_config(jobs, folder, history)
            if history == "default" and PREFILL:
                # The history the default config writes: STATE_DIRECTORY/runner.sqlite3.
                shutil.copyfile(prefilled_history(jobs, PREFILL), folder / f"{config.stem}.sqlite3")
            return ["env", f"STATE_DIRECTORY={folder}", *program, "serve", str(config)]
        command = [*program, "serve", "--log-format", "json"]
        if loop:
            command += ["--loop", loop]
        return [*command, str(runner_config(jobs, folder, history, cron, jitter))]

    env = {"PYTHONPATH": str(src)} if src is not None else None
    phases = functools.partial(cron_phases, jitter=jitter) if cron else None
    server = postgres_cpu if history == "postgresql" else None
    return Variant(name, argv, b'"daemon.started"', runner_starts, env, phases, server)


@functools.cache
def prefilled_history(jobs: int, rows: int) -> Path:
    """A SQLite history (today's schema) as a daemon of ``jobs`` jobs leaves it
    after a while: their states, ``rows`` kept runs over 30 days, a day of
    minute counts, hours and latency buckets (bench/history.py's fill for its
    part 5), thinned as retention thins them. Made once per size, then copied
    into each trial's state folder, so every trial starts from the same
    steady state. The daemon's first retention pass comes 10 s after its
    start (then every 300 s): give ``--warmup`` enough to leave it out of the
    window, or in, as the question is."""
    import asyncio

    import history as history_bench  # bench/history.py

    from runner.history import SQLiteStore
    from runner.results import ResultHub

    assert PREFILL_DIR is not None, "main() makes it with --prefill"
    path = PREFILL_DIR / f"{jobs}-{rows}.sqlite3"

    async def fill() -> None:
        store = SQLiteStore(path)
        await store.open(create=True)
        now = time.time()
        hub = ResultHub()
        records = [history_bench.record(f"job-{i}", now - 60) for i in range(jobs)]
        await store.write([], [hub.publish(r) for r in records])  # ids 1..jobs, in order
        await history_bench.fill_layout6("sqlite", store, None, rows, now, jobs)  # type: ignore[arg-type]
        # What the daemon's own retention leaves (keep: 30 d): each job's ok
        # runs past its newest 1,000 thinned. Else the first pass of a trial
        # would thin millions of runs a steady daemon never holds.
        await store.prune(before=now - 30 * 86400, keep_runs=None)
        await store.close()

    print(f"filling a history of {rows:,} runs of {jobs:,} jobs ...", flush=True)
    asyncio.run(fill())
    return path


def postgres_cpu() -> float:
    """CPU seconds of the PostgreSQL server's process tree (its postmaster's)."""
    proc = POSTGRES._proc
    return tree_cpu(proc.pid) if proc is not None else 0.0


def cron_phases(jobs: int, jitter: bool) -> list[float]:
    """Where in the second each cron job is due: at its start, or at its
    jitter offset (runner's own function, so the slots are runner's)."""
    if not jitter:
        return [0.0] * jobs
    from runner.schedules import jitter_offset

    return [jitter_offset(f"job-{i}", 1.0) for i in range(jobs)]


def peer_starts(_: Path, folder: Path) -> tuple[array.array[int], array.array[float], int]:
    with (folder / "starts.bin").open("rb") as dump:
        recorder_bytes, kept, dropped = struct.unpack("<qqq", dump.read(24))
        if dropped:
            raise RuntimeError(f"{dropped} runs past the recorder's capacity: raise it")
        jobs, starts = array.array("i"), array.array("d")
        jobs.frombytes(dump.read(4 * kept))
        starts.frombytes(dump.read(8 * kept))
    return jobs, starts, recorder_bytes


def peer_variant(name: str) -> Variant:
    def argv(jobs: int, folder: Path, capacity: float) -> list[str]:
        return [PYTHON, PEERS, name, str(jobs), str(capacity), str(folder / "starts.bin")]

    return Variant(name, argv, b"ready", peer_starts)


def base_loop() -> str | None:
    """``runner`` and ``runner+sqlite`` run on asyncio's own loop (``--loop
    auto`` would pick uvloop when installed); ``runner+uvloop`` beside them."""
    return "asyncio" if runner_loops() else None


def variants(before: tuple[str, Path] | None = None) -> list[Variant]:
    """Every variant; ``before``: (commit, its src folder) adds ``runner@COMMIT``."""
    loop = base_loop()
    # The default config first (issue 23): what users get.
    found = [runner_variant("default", history="default", default=True)]
    if before is not None:
        commit, src = before
        found.append(runner_variant(f"default@{commit}", history="default", default=True, src=src))
    found.append(runner_variant("default-history", default=True))
    if POSTGRES is not None:
        found.append(runner_variant("default+postgresql", history="postgresql", default=True))
    found += [
        runner_variant("runner", loop=loop),
        runner_variant("runner+sqlite", history="sqlite", loop=loop),
    ]
    if before is not None:
        commit, src = before
        found.append(runner_variant(f"runner@{commit}", loop=loop, src=src))
    found += [runner_variant(f"runner+{loop}", loop=loop) for loop in runner_loops()]
    found += [
        runner_variant("runner+cron", loop=loop, cron=True),
        runner_variant("runner+cron+jitter", loop=loop, cron=True, jitter=True),
    ]
    found += [peer_variant("bare"), peer_variant("apscheduler")]
    return found


# --- one trial -------------------------------------------------------------------


def measure(variant: Variant, jobs: int, seconds: float, warmup: float) -> dict[str, float]:
    """Start the variant, wait until it is ready, warm up, measure a window, stop it."""
    with tempfile.TemporaryDirectory(prefix="bench-sched-", dir=scratch_dir()) as tmp:
        folder = Path(tmp)
        out_path, err_path = folder / "stdout", folder / "stderr"
        capacity = 30 + 2 * jobs / 1000 + warmup + seconds + TAIL
        with (
            out_path.open("wb") as out,
            err_path.open("wb") as err,
            process(
                variant.argv(jobs, folder, capacity), env=variant.env, stdout=out, stderr=err
            ) as child,
        ):
            _wait_ready(child, out_path, err_path, variant, timeout=30 + 2 * jobs / 1000)
            time.sleep(warmup)
            server_before = variant.server_cpu() if variant.server_cpu else 0.0
            host_before, cpu_before, start = host_busy(), tree_cpu(child.pid), time.time()
            time.sleep(seconds)
            end, cpu_after, host_after = time.time(), tree_cpu(child.pid), host_busy()
            server_after = variant.server_cpu() if variant.server_cpu else 0.0
            rss = tree_rss(child.pid)
            time.sleep(TAIL)
        # -9: it did not stop within process()'s 10 s (a history flush of a
        # long queue on an overloaded machine); the window was measured by then.
        if child.returncode not in (0, -15, -9):
            raise RuntimeError(f"{variant.name} exited {child.returncode}: {_tail(err_path)}")
        job_ids, starts, recorder_bytes = variant.starts(out_path, folder)
    # Slots are counted in exactly `seconds` (N per job); CPU over the real window.
    phases = variant.phases(jobs) if variant.phases is not None else None
    result = analyse(job_ids, starts, jobs, start, start + seconds, phases)
    result["window_s"] = end - start
    result["stop_killed"] = float(child.returncode == -9)
    result["cpu_per_1000"] = (cpu_after - cpu_before) / max(result["runs"], 1) * 1000
    result["cpu_s"] = cpu_after - cpu_before
    server = server_after - server_before
    result["others_cores"] = max(0.0, host_after - host_before - result["cpu_s"] - server) / (
        end - start
    )
    if variant.server_cpu is not None:
        result["server_cpu_per_1000"] = server / max(result["runs"], 1) * 1000
    result["rss_mib"] = (rss - recorder_bytes) / 2**20
    return result


def host_busy() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def _wait_ready(
    child: subprocess.Popen[bytes], out: Path, err: Path, variant: Variant, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    with out.open("rb") as lines:
        seen = b""
        while variant.ready not in seen:
            if child.poll() is not None:
                raise RuntimeError(
                    f"{variant.name} exited {child.returncode} before ready: {_tail(err)}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{variant.name} not ready after {timeout:.0f} s")
            time.sleep(0.05)
            seen = seen[-64:] + lines.read()


def _tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-2000:]
    return ""


def grid_origin(runs: Sequence[float]) -> float:
    """The earliest point of a job's 1 s grid its starts fall on.

    The starts' places within the second (modulo 1 s) sit in one arc: the
    on-time runs at its beginning, later ones after them. The grid's origin
    is where that arc begins: just after the widest stretch of the second
    with no start in it.
    """
    first = runs[0]
    places = sorted((at - first) % 1.0 for at in runs)
    widest, begin = 1.0 - places[-1] + places[0], places[0]  # the stretch across 0
    for before, after in itertools.pairwise(places):
        if after - before > widest:
            widest, begin = after - before, after
    return first + begin


def analyse(
    job_ids: Sequence[int],
    starts: Sequence[float],
    jobs: int,
    start: float,
    end: float,
    phases: Sequence[float] | None = None,
) -> dict[str, float]:
    """Lateness, gaps and missing slots of the runs whose slot is in [start, end).

    ``phases``: where in the second each job's slots are, when known (cron);
    else taken from the job's runs (:func:`grid_origin`)."""
    per_job: list[list[float]] = [[] for _ in range(jobs)]
    for job, at in zip(job_ids, starts, strict=True):
        per_job[job].append(at)
    lateness: list[float] = []
    gaps: list[float] = []
    made = 0
    for job, runs in enumerate(per_job):
        if not runs:
            continue
        runs.sort()
        # Known slots (cron): the one at or before the job's first run.
        origin = grid_origin(runs) if phases is None else runs[0] - (runs[0] - phases[job]) % 1.0
        slots: set[int] = set()
        previous: float | None = None
        previous_due = 0.0
        for at in runs:
            slot = math.floor(at - origin + 1e-9)
            due = origin + slot
            if previous is not None and start <= previous_due < end:
                gaps.append(at - previous - 1.0)
            previous, previous_due = at, due
            if start <= due < end:
                lateness.append(at - due)
                slots.add(slot)
        made += len(slots)
    expected = jobs * round(end - start)
    return {
        "runs": made,
        "missing": max(0, expected - made),
        "late_p50_ms": percentile(lateness, 50) * 1000,
        "late_p99_ms": percentile(lateness, 99) * 1000,
        "late_max_ms": max(lateness, default=math.nan) * 1000,
        "gap_p50_ms": percentile(gaps, 50) * 1000,
        "gap_p99_ms": percentile(gaps, 99) * 1000,
        "gap_max_ms": max(gaps, default=math.nan) * 1000,
    }


# --- the command -----------------------------------------------------------------


def sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part]


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=sizes, default=[1000, 10000], help="sizes, comma separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="the measured window")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after ready")
    parser.add_argument(
        "--before", metavar="COMMIT", help="also run runner as it was at COMMIT (the baseline)"
    )
    parser.add_argument(
        "--variants", help="only these, comma separated (e.g. runner,runner@COMMIT)"
    )
    parser.add_argument(
        "--prefill",
        type=int,
        default=0,
        help="runs in the default variants' SQLite history before each trial (the "
        "steady state; e.g. 5000000), made once per size and copied",
    )
    parser.add_argument(
        "--postgresql",
        action="store_true",
        help="add default+postgresql: history in a PostgreSQL server of its own "
        "(tests/postgres.py; needs its binaries and root or initdb rights)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.jobs, args.seconds, args.warmup = [200], 3.0, 1.2
    args.seconds = float(round(args.seconds))  # whole seconds: N slots per job
    _need_apscheduler()
    global POSTGRES, PREFILL, PREFILL_DIR
    PREFILL = args.prefill
    stack = contextlib.ExitStack()
    if PREFILL:
        templates = stack.enter_context(
            tempfile.TemporaryDirectory(prefix="bench-sched-history-", dir=scratch_dir())
        )
        PREFILL_DIR = Path(templates)
    if args.postgresql:
        sys.path.insert(1, str(BENCH.parent / "tests"))
        from postgres import running_server

        POSTGRES = stack.enter_context(running_server())
    info = machine()
    print(describe(info), flush=True)
    tables: dict[str, str] = {}
    summaries: dict[str, Any] = {}
    work = tempfile.TemporaryDirectory(prefix="bench-sched-src-")
    before = None
    if args.before:
        before = (args.before, source_at(args.before, Path(work.name) / "before"))
    wanted = set(args.variants.split(",")) if args.variants else None
    baseline = "apscheduler"
    if args.before and (wanted is None or f"runner@{args.before}" in wanted):
        baseline = f"runner@{args.before}"
    for jobs in args.jobs:
        trials = Trials(args.trials)
        chosen = [v for v in variants(before) if wanted is None or v.name in wanted]
        print(f"{jobs} jobs x 1 s, {args.seconds:g} s windows, {args.trials} rounds", flush=True)
        runs = {
            v.name: functools.partial(measure, v, jobs, args.seconds, args.warmup) for v in chosen
        }
        if args.smoke:
            side_by_side(trials, runs)
        else:
            trials.run(runs)
        tables[str(jobs)] = trials.table(
            f"{jobs:,} jobs x 1 s", MEASURES, baseline=baseline, ratio_of=RATIOS
        )
        summaries[str(jobs)] = {"summary": trials.summary(), "samples": trials.samples}
    write_results("scheduler", args, info, {"sizes": summaries, "tables": tables})
    work.cleanup()
    stack.close()


def side_by_side(trials: Trials, runs: Mapping[str, Callable[[], dict[str, float]]]) -> None:
    """--smoke: every variant at once, one round. It only proves the script
    works, in a few seconds; the numbers mean little (they share the cores)."""
    with concurrent.futures.ThreadPoolExecutor(len(runs)) as pool:
        futures = {name: pool.submit(run) for name, run in runs.items()}
        for name, future in futures.items():
            trials.samples[name] = [future.result()]
            print(f"  smoke {name}: {trials.samples[name][0]}", flush=True)


def _need_apscheduler() -> None:
    try:
        import apscheduler  # noqa: F401
    except ImportError:
        raise SystemExit(
            "APScheduler 3 is not installed: .venv/bin/pip install -e '.[test]' "
            "(scripts/dev.sh setup)"
        ) from None


if __name__ == "__main__":
    main()

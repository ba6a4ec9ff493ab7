"""Several daemons, one monitor (issue 21): what a cluster costs and how fast it hands over.

    .venv/bin/python bench/cluster.py [--jobs 3000] [--seconds 15] [--warmup 3] [--trials 2]
        [--lease 5] [--handovers 5] [--parts scale,handover]
        [--variants solo,x1,x2,x3,split2,split3] [--loop asyncio|uvloop] [--keep DIR] [--quick]

Run it as root or as a user that may run PostgreSQL's ``initdb``: it starts its
own PostgreSQL server (tests/postgres.py's ``PostgresServer``: Debian's
binaries, a temporary data folder, 127.0.0.1 only, fsync and
synchronous_commit off, since the data is thrown away) and stops it at the
end. Every daemon is ``runner serve --log-format json CONFIG [--member NAME]``
as a process of its own, with N ``sleep`` checks (``seconds: 0``) every 1 s,
``history: {url: ...}`` on that server (a fresh database per trial), and
``cluster: {name: bench, lease: LEASE}`` for the cluster variants. Each run is
its ``job.finished`` line on the daemon's stdout (a file on /dev/shm), with
``member``; a run's start is the line's time less its ``duration_ms``.

**scale** (interleaved trials, harness.Trials):

- ``solo``: one daemon without ``cluster:``, all N checks, the same history;
- ``x1``, ``x2``, ``x3``: a cluster of 1, 2 and 3 members, each with the
  same config of N checks;
- ``split2``, ``split3``: 2 and 3 daemons without ``cluster:``, the N checks
  split between them by hand (check i to daemon i mod n), the same history:
  what one had to do before issue 21, and the same number of processes
  competing for the cores as ``x2`` and ``x3``;
- ``loc1``, ``loc3`` (issue 22): a cluster of 1 and 3 members, each in a
  location of its own (``--location lk``), every check with ``locations:``
  listing them all: each member runs every check once per slot, and stores
  its result in ``runner_cluster_locations`` and reads the others' (the
  quorum). Against ``x1``: what locations cost per run.

All members start at once; the window begins once every check has an owner,
the owners have not changed for a second, and ``--warmup`` more seconds
have passed. Over the window (``--seconds``): runs per second in total;
CPU per run of each member (its process tree, /proc) and the members' mean
and highest; PostgreSQL's own CPU (the postmaster's tree: backends,
checkpointer, WAL writer, autovacuum, reaped ones too) per run and in
cores; each member's share of the runs against an even share (the largest
deviation, %); missing runs (a slot in the window with no run: a cluster's
slots are known, ``phase + k`` from runner's own ``jitter_offset`` of the
name; a solo daemon's are taken from its runs, bench/scheduler.py's
``analyse``); double runs (two runs of one check starting less than half an
interval apart, on any members, over the whole trial, start-up included),
from the log lines and again from the history's ``started_at``; members
still running 20 s after the SIGTERM that ends a trial (counted, then
killed).

**handover**: one cluster of 3 members, N checks. Each trial signals one
member (in turn a, b, c), kill -9 and SIGTERM alternating, and times, for each
check that member owned (read from ``runner_cluster_jobs`` just before),
the first run another member starts after the signal; also how many of the
check's slots went without a run between its last run on the old member and
its first on the new one. The member is then started again under its name,
and the next trial waits until every check has an owner again, with all
three members holding some. Medians over ``--handovers`` trials of each
signal; double runs counted over every run of the part. A SIGTERM trial
whose member is still running when the others should have its checks is
counted (``stops_hung``), the member killed, and the trial not timed.

``--loop``: every daemon's ``runner serve --loop``; ``--keep DIR``: every
daemon's config and output kept in a folder per trial under DIR.

``--quick`` (alias ``--smoke``): 300 checks, 3 s windows, a 2 s lease, one
trial of each: proves the script works (tests/bench/test_bench_cluster.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import (
    PYTHON,
    Trials,
    _fmt,
    arguments,
    describe,
    machine,
    tree_cpu,
    tree_rss,
    write_results,
)
from scheduler import analyse, host_busy, scratch_dir

RUNNER = str(Path(PYTHON).with_name("runner"))
CLUSTER = "bench"
INTERVAL = 1.0
#: After the window, how long the daemons run on so the window's last runs land.
TAIL = 1.2
NAMES = ("a", "b", "c")

SCALE_MEASURES: list[tuple[str, str]] = [
    ("runs_per_s", "runs/s (all members)"),
    ("cpu_ms_per_run", "CPU ms / run, members' mean"),
    ("cpu_ms_per_run_max", "CPU ms / run, highest member"),
    ("members_cores", "members' cores"),
    ("pg_ms_per_run", "PostgreSQL CPU ms / run"),
    ("pg_cores", "PostgreSQL cores"),
    ("share_dev_pct", "largest share off even, %"),
    ("missing", "missing runs"),
    ("doubles", "double runs"),
    ("doubles_history", "double runs in the history"),
    ("stops_hung", "members still running 20 s after SIGTERM"),
    ("late_p99_ms", "late p99 ms"),
    ("rss_mib", "RSS MiB per member"),
    ("others_cores", "others' load, cores"),
]
SCALE_RATIOS = ("cpu_ms_per_run", "pg_ms_per_run")

HANDOVER_MEASURES: list[tuple[str, str]] = [
    ("moved", "checks moved"),
    ("handover_p50_s", "signal to first run elsewhere, median of the checks, s"),
    ("handover_max_s", "the last check, s"),
    ("skipped_p50", "slots skipped, median"),
    ("skipped_max", "slots skipped, most"),
    ("left_s", "old member's cluster.left, s"),
    ("taken_s", "last cluster.taken elsewhere, s"),
]


# --- the PostgreSQL server ---------------------------------------------------------


class Server:
    """tests/postgres.py's server, with its CPU read from /proc."""

    def __init__(self) -> None:
        from postgres import PostgresServer, find_bindir

        bindir = find_bindir()
        if bindir is None:
            raise SystemExit(
                "PostgreSQL server binaries not found: apt-get install postgresql "
                "(scripts/dev.sh test installs it)"
            )
        self.pg = PostgresServer(bindir)

    def __enter__(self) -> Server:
        self.pg.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.pg.stop()
        with contextlib.suppress(OSError):
            self.pg.remove()

    @property
    def version(self) -> int:
        return self.pg.version

    def cpu(self) -> float:
        proc = self.pg._proc  # the postmaster
        assert proc is not None
        return tree_cpu(proc.pid)

    @contextlib.contextmanager
    def database(self) -> Any:
        url = self.pg.create_database()
        try:
            yield url
        finally:
            name = url.rpartition("/")[2]
            self.pg.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def query(url: str, sql: str, *args: Any) -> list[Any]:
    """One statement's rows (a connection of its own)."""

    async def run() -> list[Any]:
        import asyncpg

        conn = await asyncpg.connect(url, timeout=10)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def owners(url: str) -> dict[str | None, list[str]]:
    """Each owner's checks, as ``runner_cluster_jobs`` says (None: no owner)."""
    found: dict[str | None, list[str]] = {}
    with contextlib.suppress(Exception):  # the tables appear with the first member
        for row in query(
            url, "SELECT job, owner FROM runner_cluster_jobs WHERE cluster = $1", CLUSTER
        ):
            found.setdefault(row["owner"], []).append(row["job"])
    return found


# --- the daemons -------------------------------------------------------------------


def write_config(
    folder: Path,
    url: str,
    jobs: int,
    lease: float | None,
    share: tuple[int, int] = (0, 1),
    places: int = 0,
) -> Path:
    """N sleep checks (0 s) every 1 s, history on ``url``; ``cluster:`` unless
    ``lease`` is None; ``share`` (k, n): only the checks i with i mod n = k;
    ``places``: each check with ``locations: [l0, l1, ...]``, that many.
    Written with an alias, as bench/scheduler.py does."""
    mine = [i for i in range(jobs) if i % share[1] == share[0]]
    head = f"history: {{url: '{url}'}}\n"
    if lease is not None:
        head = f"cluster: {{name: {CLUSTER}, lease: {lease:g}s}}\n" + head
    lines = [head, "defaults:\n  interval: 1s\n", "jobs:\n"]
    first, rest = "options: &zero {seconds: 0}", "options: *zero"
    if places:
        listed = ", ".join(f"l{k}" for k in range(places))
        first, rest = f"{first}, locations: &places [{listed}]", f"{rest}, locations: *places"
    lines.append(f"  - {{name: job-{mine[0]}, plugin: sleep, {first}}}\n")
    lines += [f"  - {{name: job-{i}, plugin: sleep, {rest}}}\n" for i in mine[1:]]
    path = folder / ("cluster.yaml" if lease is not None else f"solo-{share[0]}.yaml")
    path.write_text("".join(lines))
    return path


class Daemon:
    """One ``runner serve`` process; its runs read from its stdout as they come."""

    def __init__(
        self, config: Path, folder: Path, member: str | None, tag: str, location: str | None = None
    ) -> None:
        self.member = member or "solo"
        self.out_path = folder / f"{tag}.out"
        self.err_path = folder / f"{tag}.err"
        argv = [RUNNER, "serve", "--log-format", "json", str(config)]
        if LOOP is not None:
            argv += ["--loop", LOOP]
        if member is not None:
            argv += ["--member", member]
        if location is not None:
            argv += ["--location", location]
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True
            )
        STARTED.append(self)
        self._reader = self.out_path.open("rb")
        self._partial = b""
        #: (job number, start) of every run read so far.
        self.runs: list[tuple[int, float]] = []
        #: (event, time) of every line that is not a run.
        self.events: list[tuple[str, float]] = []
        self.started = False
        self.hung = False

    def read(self) -> None:
        if self._reader.closed:
            return
        chunk = self._reader.read()
        if not chunk:
            return
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            if b'"job.finished"' in raw:
                line = json.loads(raw)
                finished = _epoch(line["timestamp"])
                self.runs.append(
                    (int(line["job"].removeprefix("job-")), finished - line["duration_ms"] / 1000)
                )
            elif raw:
                line = json.loads(raw)
                event = line.get("event", "")
                self.events.append((event, _epoch(line["timestamp"])))
                if event == "daemon.started":
                    self.started = True

    def wait_started(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.started:
            self.read()
            if self.proc.poll() is not None and not self.started:
                self.read()
                raise RuntimeError(
                    f"{self.member} exited {self.proc.returncode} before it started: "
                    f"{_tail(self.err_path)}{_tail(self.out_path)}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.member} not started after {timeout:.0f} s")
            time.sleep(0.05)

    def cpu(self) -> float:
        return tree_cpu(self.proc.pid) if self.proc.poll() is None else math.nan

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # Still running `timeout` s after SIGTERM: counted (stops_hung), then killed.
            self.hung = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
        self.read()
        self._reader.close()
        return code


#: Every daemon started, so that none outlives the script (main's finally).
STARTED: list[Daemon] = []


def kill_leftovers() -> None:
    """SIGKILL every daemon of this script still running (after an error)."""
    for daemon in STARTED:
        if daemon.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.proc.pid, signal.SIGKILL)
            daemon.proc.wait()


def _epoch(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-1500:]
    return ""


def start_all(daemons: Sequence[Daemon], jobs: int) -> None:
    for daemon in daemons:
        daemon.wait_started(timeout=60 + jobs / 100)


def settle(url: str, names: Sequence[str], jobs: int, timeout: float) -> dict[str, int]:
    """Wait until every check has an owner among ``names``, each of them owns
    some, and nothing moved for a second; returns the count each owns."""
    deadline = time.monotonic() + timeout
    previous: dict[str, int] | None = None
    while True:
        held = owners(url)
        counts = {str(k): len(v) for k, v in held.items()}
        if (
            None not in held
            and set(counts) == set(names)
            and sum(counts.values()) == jobs
            and counts == previous
        ):
            return counts
        if time.monotonic() > deadline:
            raise TimeoutError(f"the cluster did not settle in {timeout:.0f} s: {counts}")
        previous = counts
        time.sleep(1.0)


#: --loop: every daemon's event loop (None: runner's default, uvloop when installed).
LOOP: str | None = None
#: --keep: the daemons' output is kept in folders under this one.
KEEP: Path | None = None


@contextlib.contextmanager
def workdir() -> Any:
    """A scratch folder for one trial's configs and output (/dev/shm when
    there is one); kept under --keep DIR when given."""
    if KEEP is None:
        with tempfile.TemporaryDirectory(prefix="bench-cluster-", dir=scratch_dir()) as tmp:
            yield tmp
    else:
        KEEP.mkdir(parents=True, exist_ok=True)
        yield tempfile.mkdtemp(prefix="trial-", dir=KEEP)


def cluster_phases(jobs: int) -> list[float]:
    """Each check's place in the second in a cluster (schedules.aligned):
    runner's own function, so the slots are runner's."""
    from runner.schedules import jitter_offset

    return [jitter_offset(f"job-{i}", min(INTERVAL, 1.0)) for i in range(jobs)]


def doubles(runs: Iterable[tuple[int, float]]) -> list[tuple[int, float, float]]:
    """Pairs of runs of one check that started less than half an interval apart."""
    by_job: dict[int, list[float]] = {}
    for job, at in runs:
        by_job.setdefault(job, []).append(at)
    found = []
    for job, starts in by_job.items():
        starts.sort()
        for a, b in itertools.pairwise(starts):
            if b - a < INTERVAL / 2:
                found.append((job, a, b))
    return found


def history_doubles(url: str) -> float:
    """Pairs of runs of one check less than half an interval apart by the
    history's own ``started_at`` (taken as each run starts; the log lines'
    starts are their write time less the duration, which a delayed write
    shifts). A killed member's last unwritten results are not in it."""
    rows = query(
        url,
        "SELECT count(*) AS n FROM (SELECT started_at - lag(started_at) OVER "
        "(PARTITION BY job_id, location ORDER BY started_at) AS gap FROM runner_runs) AS t "
        "WHERE gap < $1",
        INTERVAL / 2,
    )
    return float(rows[0]["n"])


# --- part 1: scale -----------------------------------------------------------------


def scale_trial(
    server: Server,
    members: int,
    split: int,
    jobs: int,
    seconds: float,
    warmup: float,
    lease: float,
    places: int = 0,
) -> dict[str, float]:
    """``members`` in a cluster of N checks, or (``members`` 0) ``split``
    daemons without ``cluster:``, each with its share of the N checks;
    ``places``: the checks with ``locations:`` that many, member k in ``lk``
    (so each member runs every check, once per slot)."""
    with (
        server.database() as url,
        workdir() as tmp,
    ):
        folder = Path(tmp)
        if places:
            config = write_config(folder, url, jobs, lease, places=places)
            daemons = [
                Daemon(config, folder, name, name, location=f"l{k}")
                for k, name in enumerate(NAMES[:places])
            ]
        elif members:
            config = write_config(folder, url, jobs, lease)
            daemons = [Daemon(config, folder, name, name) for name in NAMES[:members]]
        else:
            daemons = [
                Daemon(write_config(folder, url, jobs, None, (k, split)), folder, None, f"solo-{k}")
                for k in range(split)
            ]
        try:
            start_all(daemons, jobs)
            if members or places:
                total = jobs * max(places, 1)
                settle(url, [d.member for d in daemons], total, timeout=30 + 3 * lease)
            time.sleep(warmup)
            host0, pg0 = host_busy(), server.cpu()
            cpu0 = [d.cpu() for d in daemons]
            start = time.time()
            time.sleep(seconds)
            end = time.time()
            cpu1 = [d.cpu() for d in daemons]
            pg1, host1 = server.cpu(), host_busy()
            rss = [tree_rss(d.proc.pid) for d in daemons]
            time.sleep(TAIL)
        finally:
            codes = [d.stop() for d in daemons]
        failed = [d for d, code in zip(daemons, codes, strict=True) if code != 0 and not d.hung]
        if failed:
            raise RuntimeError(f"a daemon exited {codes}: {_tail(failed[0].err_path)}")
        in_history = history_doubles(url)
    phases = cluster_phases(jobs) if members or places else None
    every = [run for d in daemons for run in d.runs]
    totals = analyse(
        [j for j, _ in every], [t for _, t in every], jobs, start, start + seconds, phases
    )
    double = len(doubles(every))
    if places:  # each member runs every check: its runs are the slots' of one location
        per = [
            analyse(
                [j for j, _ in d.runs], [t for _, t in d.runs], jobs, start, start + seconds, phases
            )
            for d in daemons
        ]
        totals["runs"] = sum(p["runs"] for p in per)
        totals["missing"] = sum(p["missing"] for p in per)
        double = sum(len(doubles(d.runs)) for d in daemons)
    made = []
    for daemon in daemons:
        own = analyse(
            [j for j, _ in daemon.runs],
            [t for _, t in daemon.runs],
            jobs,
            start,
            start + seconds,
            phases,
        )
        made.append(own["runs"])
    used = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
    per_run = [u / max(n, 1) * 1000 for u, n in zip(used, made, strict=True)]
    even = totals["runs"] / len(daemons)
    pg = pg1 - pg0
    window = end - start
    return {
        "runs_per_s": totals["runs"] / seconds,
        "cpu_ms_per_run": sum(used) / max(totals["runs"], 1) * 1000,
        "cpu_ms_per_run_max": max(per_run),
        "members_cores": sum(used) / window,
        "pg_ms_per_run": pg / max(totals["runs"], 1) * 1000,
        "pg_cores": pg / window,
        "share_dev_pct": max(abs(n - even) / even * 100 for n in made) if even else math.nan,
        "missing": totals["missing"],
        "doubles": double,
        "doubles_history": in_history,
        "stops_hung": float(sum(d.hung for d in daemons)),
        "late_p99_ms": totals["late_p99_ms"],
        "rss_mib": statistics.mean(rss) / 2**20,
        "others_cores": max(0.0, host1 - host0 - sum(used) - pg) / window,
    }


# --- part 2: handover --------------------------------------------------------------


def handover_part(
    server: Server, jobs: int, lease: float, trials: int, on_trial: Callable[[str, dict], None]
) -> dict[str, Any]:
    """3 members; ``trials`` kill -9 and ``trials`` SIGTERM, alternating."""
    samples: dict[str, list[dict[str, float]]] = {"kill -9": [], "SIGTERM": []}
    with (
        server.database() as url,
        workdir() as tmp,
    ):
        folder = Path(tmp)
        config = write_config(folder, url, jobs, lease)
        live = {name: Daemon(config, folder, name, f"{name}-0") for name in NAMES}
        gone: list[Daemon] = []
        restarts = 0
        try:
            start_all(list(live.values()), jobs)
            settle(url, NAMES, jobs, timeout=30 + 3 * lease)
            order = [(kind, i) for i in range(trials) for kind in ("kill -9", "SIGTERM")]
            for number, (kind, _) in enumerate(order):
                victim_name = NAMES[number % len(NAMES)]
                victim = live[victim_name]
                held = {int(j.removeprefix("job-")) for j in owners(url).get(victim_name, [])}
                for daemon in live.values():
                    daemon.read()
                last_old = _last_runs(victim.runs, held)
                sent = time.time()
                victim.signal(signal.SIGKILL if kind == "kill -9" else signal.SIGTERM)
                others = [d for n, d in live.items() if n != victim_name]
                try:
                    first = _wait_taken(others, held, sent, timeout=3 * lease + 20)
                except TimeoutError:
                    if kind != "SIGTERM" or victim.proc.poll() is not None:
                        raise
                    # Still running after SIGTERM, holding its checks: counted
                    # (stops_hung), killed, and the trial not timed.
                    print(f"  {kind}: {victim_name} still running, killed", flush=True)
                    victim.stop(timeout=0.1)
                    _wait_taken(others, held, time.time(), timeout=3 * lease + 20)
                    first = {}
                code = victim.stop()
                if kind == "SIGTERM" and code != 0 and not victim.hung:
                    raise RuntimeError(f"{victim_name} exited {code} after SIGTERM")
                victim.read()
                gone.append(victim)
                restarts += 1
                live[victim_name] = Daemon(config, folder, victim_name, f"{victim_name}-{restarts}")
                if not first:
                    live[victim_name].wait_started(timeout=60 + jobs / 100)
                    settle(url, NAMES, jobs, timeout=30 + 3 * lease)
                    continue
                last_old.update(_last_runs(victim.runs, held))
                waits = [first[j] - sent for j in held]
                skipped = [max(0, round(first[j] - last_old[j]) - 1) for j in held if j in last_old]
                taken = [at for d in others for event, at in d.events if event == "cluster.taken"]
                result = {
                    "moved": float(len(held)),
                    "handover_p50_s": statistics.median(waits),
                    "handover_max_s": max(waits),
                    "skipped_p50": statistics.median(skipped) if skipped else math.nan,
                    "skipped_max": float(max(skipped, default=0)),
                    # Where the time went: the old member's last lines, the
                    # others' last take (times of the log lines, from the signal).
                    "left_s": _when(victim, "cluster.left", sent),
                    "stopped_s": _when(victim, "daemon.stopped", sent),
                    "taken_s": max((at for at in taken if at > sent), default=math.nan) - sent,
                }
                result = {k: v for k, v in result.items() if not math.isnan(v)}
                samples[kind].append(result)
                on_trial(kind, result)
                live[victim_name].wait_started(timeout=60 + jobs / 100)
                settle(url, NAMES, jobs, timeout=30 + 3 * lease)
        finally:
            for daemon in live.values():
                daemon.stop()
        in_history = history_doubles(url)
        every = [run for d in [*gone, *live.values()] for run in d.runs]
    return {
        "samples": samples,
        "doubles": doubles(every),
        "runs": len(every),
        "doubles_history": in_history,
        "stops_hung": float(sum(d.hung for d in [*gone, *live.values()])),
    }


def _when(daemon: Daemon, event: str, after: float) -> float:
    """Seconds from ``after`` to the daemon's first ``event`` line after it (NaN: none)."""
    times = [at for name, at in daemon.events if name == event and at > after]
    return min(times) - after if times else math.nan


def _last_runs(runs: Sequence[tuple[int, float]], jobs: set[int]) -> dict[int, float]:
    last: dict[int, float] = {}
    for job, at in runs:
        if job in jobs and at > last.get(job, -math.inf):
            last[job] = at
    return last


def _wait_taken(
    others: Sequence[Daemon], jobs: set[int], after: float, timeout: float
) -> dict[int, float]:
    """Each of ``jobs``' first start on one of ``others`` after ``after``."""
    first: dict[int, float] = {}
    seen = [0] * len(others)
    deadline = time.monotonic() + timeout
    while len(first) < len(jobs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(jobs) - len(first)} checks not taken over in {timeout} s")
        time.sleep(0.1)
        for i, daemon in enumerate(others):
            daemon.read()
            for job, at in daemon.runs[seen[i] :]:
                if job in jobs and at > after and at < first.get(job, math.inf):
                    first[job] = at
            seen[i] = len(daemon.runs)
    return first


def handover_table(samples: Mapping[str, list[dict[str, float]]], lease: float) -> str:
    trials = Trials(rounds=0, samples=dict(samples))
    return trials.table(f"Handover, 3 members, lease {lease:g} s", HANDOVER_MEASURES)


# --- the command -------------------------------------------------------------------


VARIANTS = ("solo", "x1", "x2", "x3", "split2", "split3", "loc1", "loc3")


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], trials=2)
    parser.add_argument("--quick", action="store_true", help="the same as --smoke")
    parser.add_argument("--jobs", type=int, default=3000, help="checks at 1 s")
    parser.add_argument("--seconds", type=float, default=15.0, help="the measured window")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after settling")
    parser.add_argument("--lease", type=float, default=5.0, help="cluster: {lease: ...}, s")
    parser.add_argument("--handovers", type=int, default=5, help="trials of each signal")
    parser.add_argument("--parts", default="scale,handover")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="of the scale part")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), help="runner serve --loop")
    parser.add_argument("--keep", type=Path, help="keep every daemon's output under this folder")
    args = parser.parse_args()
    global KEEP, LOOP
    KEEP, LOOP = args.keep, args.loop
    if args.quick or args.smoke:
        args.smoke = True
        args.jobs, args.seconds, args.warmup, args.lease = 300, 3.0, 1.0, 2.0
        args.trials, args.handovers = 1, 1
    args.seconds = float(round(args.seconds))  # whole seconds: N slots per check
    parts = set(args.parts.split(","))
    wanted = [v for v in args.variants.split(",") if v]
    info = machine()
    print(describe(info), flush=True)
    data: dict[str, Any] = {}
    # SIGTERM ends the script through its finally blocks: the server stopped,
    # no daemon left behind (they run in sessions of their own).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with Server() as server, contextlib.ExitStack() as cleanup:
        cleanup.callback(kill_leftovers)
        info["postgresql"] = server.version
        print(f"PostgreSQL {server.version} on 127.0.0.1:{server.pg.port}", flush=True)
        if "scale" in parts:
            sizes = {"solo": (0, 1, 0), "split2": (0, 2, 0), "split3": (0, 3, 0)}
            sizes.update({f"x{n}": (n, 1, 0) for n in (1, 2, 3)})
            sizes.update({f"loc{n}": (0, 1, n) for n in (1, 3)})
            runs = {
                name: _bind(
                    scale_trial,
                    server,
                    sizes[name][0],
                    sizes[name][1],
                    args.jobs,
                    args.seconds,
                    args.warmup,
                    args.lease,
                    sizes[name][2],
                )
                for name in wanted
            }
            trials = Trials(args.trials)
            print(
                f"scale: {args.jobs} checks x 1 s, lease {args.lease:g} s, "
                f"{args.seconds:g} s windows, {args.trials} rounds",
                flush=True,
            )
            trials.run(runs)
            table = trials.table(
                f"{args.jobs:,} checks x 1 s, lease {args.lease:g} s",
                SCALE_MEASURES,
                baseline="solo" if "solo" in wanted else None,
                ratio_of=SCALE_RATIOS,
            )
            data["scale"] = {"summary": trials.summary(), "samples": trials.samples, "table": table}
        if "handover" in parts:
            print(
                f"handover: 3 members, {args.jobs} checks x 1 s, lease {args.lease:g} s, "
                f"{args.handovers} trials of each signal",
                flush=True,
            )

            def shown(kind: str, result: dict[str, float]) -> None:
                text = ", ".join(f"{k} {_fmt(v)}" for k, v in result.items())
                print(f"  {kind}: {text}", flush=True)

            found = handover_part(server, args.jobs, args.lease, args.handovers, shown)
            table = handover_table(found["samples"], args.lease)
            print(
                f"double runs in the handover part: {len(found['doubles'])} "
                f"(in the history: {found['doubles_history']:.0f}); members still running "
                f"after SIGTERM: {found['stops_hung']:.0f}",
                flush=True,
            )
            data["handover"] = {
                "samples": found["samples"],
                "doubles": found["doubles"][:100],
                "double_count": len(found["doubles"]),
                "doubles_history": found["doubles_history"],
                "stops_hung": found["stops_hung"],
                "runs": found["runs"],
                "table": table,
            }
    write_results("cluster", args, info, data)


def _bind(function: Callable[..., dict[str, float]], *args: Any) -> Callable[[], dict[str, float]]:
    return lambda: function(*args)


if __name__ == "__main__":
    main()

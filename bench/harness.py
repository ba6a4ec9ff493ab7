"""What every benchmark in bench/ shares: the machine, process-tree CPU and
memory from /proc, interleaved trials, a table of median (min-max), JSON out.

A benchmark script is plain Python run with the project's virtualenv::

    .venv/bin/python bench/NAME.py [--trials 5] [--smoke] [--json PATH]

``--smoke`` shrinks every size so the script finishes in seconds; the tests
run each script that way (tests/bench/) so none of them can rot.

Measuring a peer the same way as runner is the point: each side runs as its
own process tree, started by the benchmark, and its CPU is read from
``/proc/PID/stat`` of the process and every live descendant (utime + stime +
cutime + cstime, so children already reaped by their parents count too).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PYTHON = sys.executable


# --- the machine -----------------------------------------------------------


def machine() -> dict[str, Any]:
    """What a number needs next to it to be read later."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    debian = ""
    with contextlib.suppress(OSError):
        debian = Path("/etc/debian_version").read_text().strip()
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    return {
        "host": platform.node(),
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30, 1),
        "kernel": platform.release(),
        "debian": debian,
        "python": platform.python_version(),
        "commit": commit,
        "loadavg_at_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def describe(info: Mapping[str, Any]) -> str:
    return (
        f"{info['date']}, {info['cores']} cores ({info['cpu']}), {info['memory_gib']} GiB, "
        f"Debian {info['debian']}, kernel {info['kernel']}, Python {info['python']}, "
        f"runner {info['commit']}, load {info['loadavg_at_start'][0]:.2f}"
    )


#: The bare peer of runner's echo listener: an asyncio Protocol echo server,
#: silent. ``python -c BARE_ECHO_SERVER PORT [asyncio|uvloop]``.
BARE_ECHO_SERVER = """\
import asyncio, sys

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()

if sys.argv[2:] == ["uvloop"]:
    import uvloop
    uvloop.run(main(int(sys.argv[1])))
else:
    asyncio.run(main(int(sys.argv[1])))
"""


# --- processes ---------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """pid and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds of pid's tree: itself, its live descendants, and whatever
    they have reaped (cutime, cstime)."""
    total = 0
    for member in descendants(pid):
        fields = _stat(member)
        if fields is not None:
            # After "pid (comm) ": state ppid ... utime is the 12th, stime,
            # cutime, cstime follow.
            total += sum(int(v) for v in fields[11:15])
    return total / CLK_TCK


def tree_cpu_precise(pid: int) -> float:
    """:func:`tree_cpu` without its rounding: ``/proc/PID/stat`` counts in ticks
    (10 ms) rounded down per process, which makes a tree of many short-lived
    or nearly idle processes (socat's child per connection, an idle daemon)
    look free. Each live process counts the nanoseconds of its live threads
    (``/proc/PID/task/TID/schedstat``), or its ticks if more (threads that
    ended); reaped children count as in :func:`tree_cpu` (their total rounded
    down to a tick: a difference of two readings is within 10 ms)."""
    total = 0.0
    for member in descendants(pid):
        fields = _stat(member)
        if fields is None:
            continue
        ticks = sum(int(v) for v in fields[11:13]) / CLK_TCK
        reaped = sum(int(v) for v in fields[13:15]) / CLK_TCK
        threads = 0
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{member}/task"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = Path(f"/proc/{member}/task/{tid}/schedstat").read_text()
                    threads += int(stat.split()[0])
        total += max(ticks, threads / 1e9) + reaped
    return total


def tree_rss(pid: int) -> int:
    """Resident bytes of pid's tree (sum of RSS; shared pages count once per
    process, as `ps` shows them)."""
    total = 0
    for member in descendants(pid):
        fields = _stat(member)
        if fields is not None:
            total += int(fields[21]) * PAGE
    return total


def self_cpu() -> float:
    """This process's CPU seconds (every thread)."""
    return time.process_time()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on {host}:{port} after {timeout:g} s"
                ) from None
            time.sleep(0.01)


@contextlib.contextmanager
def process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdout: Any = subprocess.DEVNULL,
    stderr: Any = subprocess.DEVNULL,
    cwd: str | Path | None = None,
    stop_signal: int = signal.SIGTERM,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a peer as its own process group; stop the whole group after."""
    child = subprocess.Popen(
        list(argv),
        env={**os.environ, **env} if env is not None else None,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        yield child
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, stop_signal)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def source_at(commit: str, into: Path) -> Path:
    """runner's ``src/`` as it was at ``commit`` (``git archive``), unpacked into
    the new folder ``into``; returns that ``src`` folder, to put on PYTHONPATH
    and run the older code side by side with this one."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def need(program: str, package: str) -> str:
    """The path of a peer's program, or exit telling how to get it."""
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin:/sbin")
    if path is None:
        raise SystemExit(f"{program} not found: run bench/setup (Debian package {package})")
    return path


# --- trials and tables -------------------------------------------------------


@dataclass
class Trials:
    """Measurements per variant over interleaved trials.

    ``run(variants)`` calls each variant once per round, in an order rotated
    every round, so a noisy neighbour hits every variant alike. A variant
    returns a dict of measure -> number.
    """

    rounds: int
    samples: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def run(self, variants: Mapping[str, Callable[[], Mapping[str, float]]]) -> None:
        names = list(variants)
        for round_no in range(self.rounds):
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:
                result = dict(variants[name]())
                self.samples.setdefault(name, []).append(result)
                shown = ", ".join(f"{k} {_fmt(v)}" for k, v in result.items())
                print(f"  round {round_no + 1}/{self.rounds} {name}: {shown}", flush=True)

    def values(self, variant: str, measure: str) -> list[float]:
        return [s[measure] for s in self.samples.get(variant, []) if measure in s]

    def median(self, variant: str, measure: str) -> float:
        values = self.values(variant, measure)
        return statistics.median(values) if values else float("nan")

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        out: dict[str, dict[str, dict[str, float]]] = {}
        for variant, samples in self.samples.items():
            measures = {m for s in samples for m in s}
            out[variant] = {
                m: {
                    "median": statistics.median(self.values(variant, m)),
                    "min": min(self.values(variant, m)),
                    "max": max(self.values(variant, m)),
                }
                for m in sorted(measures)
            }
        return out

    def table(
        self,
        title: str,
        measures: Sequence[tuple[str, str]],
        *,
        baseline: str | None = None,
        ratio_of: Sequence[str] = (),
    ) -> str:
        """A markdown table: one row per variant, one column per measure as
        median (min-max); then the ratio of each variant's median to the
        baseline's for the measures in ratio_of."""
        header = ["variant", *(label for _, label in measures)]
        header += [
            f"{label} vs {baseline}" for key, label in measures if baseline and key in ratio_of
        ]
        lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for variant in self.samples:
            cells = [variant]
            for key, _ in measures:
                values = self.values(variant, key)
                if not values:
                    cells.append("—")
                elif len(values) == 1:
                    cells.append(_fmt(values[0]))
                else:
                    middle = _fmt(statistics.median(values))
                    cells.append(f"{middle} ({_fmt(min(values))}-{_fmt(max(values))})")
            if baseline:
                for key, _ in measures:
                    if key in ratio_of:
                        base = self.median(baseline, key)
                        mine = self.median(variant, key)
                        cells.append(
                            f"{mine / base:.2f}x" if base and base == base and mine == mine else "—"
                        )
            lines.append("| " + " | ".join(cells) + " |")
        text = "\n".join(lines) + "\n"
        print("\n" + text, flush=True)
        return text


def _fmt(value: float) -> str:
    if value != value:  # NaN
        return "—"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# --- command line and output -------------------------------------------------


def arguments(description: str, **defaults: Any) -> argparse.ArgumentParser:
    """The flags every benchmark takes; add your own to the parser returned."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--trials", type=int, default=defaults.get("trials", 5), help="rounds of A/B/... trials"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: only proves the script still works"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where to write the results (default bench/results/NAME.json)",
    )
    return parser


def write_results(
    name: str, args: argparse.Namespace, info: Mapping[str, Any], data: Mapping[str, Any]
) -> Path:
    path: Path = args.json or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": dict(info), "arguments": _plain(vars(args)), **data}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"wrote {path}", flush=True)
    return path


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}

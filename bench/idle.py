"""What an idle daemon costs: CPU over 60 s with 1,000 hourly jobs and an echo
listener, side by side with the same daemon at an earlier commit and with a
bare asyncio echo server.

Usage::

    .venv/bin/python bench/idle.py [--trials 3] [--seconds 60] [--jobs 1000]
        [--before COMMIT] [--smoke] [--json PATH]

Every variant runs at once, for the whole benchmark (idle processes do not
disturb each other, and the machine's noise hits all alike):

  runner uvloop / runner asyncio
            ``runner serve --loop L`` of the work tree: --jobs ``sleep`` jobs
            every hour plus one echo-listener, history on (SQLite, as by
            default), JSON logs to /dev/null.
  runner at COMMIT
            the same config run by the source of an earlier commit (``git
            archive`` of its src/ into a temp dir, first on PYTHONPATH), on the
            loop that commit used; default: the commit before the watcher's change.
  bare asyncio
            an ``asyncio.Protocol`` echo server: the floor.

After every daemon has logged ``daemon.started`` and its first runs (spread over
a second) are over, and 15 s more (history's first retention pass runs 10 s
after start, then hourly), each trial reads every process's CPU at the start and the
end of --seconds: nanoseconds per thread from ``/proc/PID/task/TID/schedstat``
(ticks would round an idle process's few milliseconds down to nothing),
reported as ms per 60 s for the whole tree, for the loop's thread (the main
one) and for the other threads (the blocked-loop watcher, the history writer,
executors).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BARE_ECHO_SERVER,
    PYTHON,
    Trials,
    arguments,
    descendants,
    describe,
    free_port,
    machine,
    process,
    source_at,
    wait_for_port,
    write_results,
)

#: The commit before the watcher slept on the loop's epoll.
BEFORE = "62a3c26"


def config_text(jobs: int, port: int, history: Path) -> str:
    lines = [
        f"history: {{path: {history}}}",
        "jobs:",
        f"  - {{name: echo, plugin: echo-listener, options: {{port: {port}}}}}",
    ]
    lines += [
        f"  - {{name: idle-{i}, plugin: sleep, interval: 1h, options: {{seconds: 0}}}}"
        for i in range(jobs)
    ]
    return "\n".join(lines) + "\n"


def thread_cpu(pid: int) -> tuple[float, float]:
    """(main thread, other threads) CPU seconds of pid's whole tree, in ns precision."""
    main = others = 0
    for member in descendants(pid):
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{member}/task"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    ns = int(Path(f"/proc/{member}/task/{tid}/schedstat").read_text().split()[0])
                    if int(tid) == member:
                        main += ns
                    else:
                        others += ns
    return main / 1e9, others / 1e9


class Daemon:
    """A runner serving the config; waits for its first runs to be over."""

    def __init__(self, argv: list[str], env: dict[str, str], jobs: int) -> None:
        self.argv, self.env, self.jobs = argv, env, jobs
        self.finished = 0
        self.started = threading.Event()

    @contextlib.contextmanager
    def run(self) -> Iterator[int]:
        with process(self.argv, env=self.env, stdout=subprocess.PIPE) as child:
            reader = threading.Thread(target=self._read, args=(child,), daemon=True)
            reader.start()
            deadline = time.monotonic() + 120
            while self.finished < self.jobs or not self.started.is_set():
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.argv} did not start its jobs")
                time.sleep(0.1)
            yield child.pid

    def _read(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stdout is not None
        for line in child.stdout:  # read on, so that the pipe never fills
            with contextlib.suppress(ValueError):
                event = json.loads(line).get("event")
                if event == "job.finished":
                    self.finished += 1
                elif event == "daemon.started":
                    self.started.set()


def main() -> None:
    parser = arguments(__doc__.split("\n", 1)[0], trials=3)
    parser.add_argument("--seconds", type=float, default=60.0, help="of idleness per trial")
    parser.add_argument("--jobs", type=int, default=1000, help="hourly sleep jobs")
    parser.add_argument("--before", default=BEFORE, help="the earlier commit to compare with")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.jobs = 2.0, 20
    info = machine()
    print(describe(info), flush=True)
    print(f"{args.jobs} hourly jobs + an echo listener, {args.seconds:g} s per trial", flush=True)

    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-idle-")))
        old_src = source_at(args.before, work / "before")

        def runner(name: str, extra: list[str], env: dict[str, str]) -> Daemon:
            config = work / f"{name}.yaml"
            config.write_text(config_text(args.jobs, free_port(), work / f"{name}.sqlite"))
            argv = [PYTHON, "-m", "runner", "serve", str(config), "--log-format", "json", *extra]
            return Daemon(argv, env, args.jobs)

        daemons = {
            "runner uvloop": runner("uvloop", ["--loop", "uvloop"], {}),
            "runner asyncio": runner("asyncio", ["--loop", "asyncio"], {}),
            f"runner at {args.before}": runner("before", [], {"PYTHONPATH": str(old_src)}),
        }
        pids = {name: stack.enter_context(d.run()) for name, d in daemons.items()}
        port = free_port()
        pids["bare asyncio"] = stack.enter_context(
            process([PYTHON, "-c", BARE_ECHO_SERVER, str(port)])
        ).pid
        wait_for_port(port)
        # The first runs' aftermath: history flushes, and its first retention
        # pass, 10 s after start (then hourly).
        time.sleep(min(15.0, args.seconds))

        trials = Trials(1)
        for round_no in range(args.trials):
            start = {name: thread_cpu(pid) for name, pid in pids.items()}
            time.sleep(args.seconds)
            end = {name: thread_cpu(pid) for name, pid in pids.items()}
            scale = 60.0 / args.seconds * 1000  # ms per 60 s
            for name in pids:
                loop_ms = (end[name][0] - start[name][0]) * scale
                other_ms = (end[name][1] - start[name][1]) * scale
                sample = {"cpu_ms": loop_ms + other_ms, "loop_ms": loop_ms, "other_ms": other_ms}
                trials.samples.setdefault(name, []).append(sample)
                print(
                    f"  round {round_no + 1}/{args.trials} {name}: "
                    f"{sample['cpu_ms']:.2f} ms ({loop_ms:.2f} loop, {other_ms:.2f} other)",
                    flush=True,
                )
        table = trials.table(
            f"idle: {args.jobs} hourly jobs + an echo listener, CPU ms per 60 s",
            [("cpu_ms", "CPU ms/60 s"), ("loop_ms", "loop thread"), ("other_ms", "other threads")],
        )
    write_results(
        "idle",
        args,
        info,
        {
            "variants": list(pids),
            "summary": trials.summary(),
            "samples": trials.samples,
            "table": table,
        },
    )


if __name__ == "__main__":
    main()

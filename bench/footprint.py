"""What the daemon costs before it does any work: start-up, imports, idle.

Run: .venv/bin/python bench/footprint.py [--trials 10] [--idle-seconds 60]
     [--idle-jobs 1000] [--idle-rounds 1] [--baseline COMMIT] [--smoke] [--json PATH]

``--baseline COMMIT`` adds runner's ``src/`` as of COMMIT (exported with git,
run through ``PYTHONPATH``) to the start-up trials and the idle window: before
and after a change in one run.

Compared side by side with a bare asyncio echo server (a ``Protocol`` that
writes back what it reads, printing nothing: the least a Python process that
answers on a TCP port can cost), each started by this script as its own
process tree:

* **spawn to ready**: runner ``serve`` of a config holding one
  ``echo-listener`` and one hourly ``sleep`` job (history off), timed from
  just before the spawn until ``READY=1`` arrives on a ``NOTIFY_SOCKET`` this
  script binds (a Unix datagram socket, as systemd passes it; the daemon sends
  READY once its services are bound and its checks started). For the bare
  server, until its port accepts a connection. A third variant, ``runner
  (history on)``, has the same config with SQLite history on (the default).
* **spawn to first echo**: the same spawn, then the script connects again and
  again (1 ms apart) until a line it sent comes back; and the CPU time the
  server's threads had used by then, and how long they had waited for a CPU
  while runnable (``/proc/PID/task/TID/schedstat``, in nanoseconds). On a
  shared machine the CPU time is the steadier figure: the wait is what the
  neighbours added to the wall clock.
* **import**: wall time of a fresh ``python -c 'import runner.cli'`` (and of
  ``import asyncio`` for the bare server); the CPU of importing what
  ``runner serve`` needs, layer by layer (python, asyncio, importlib.metadata,
  structlog, pydantic, yaml, runner), each layer's cost the difference of two
  rows; then one ``-X importtime`` run of each of ``import runner.cli`` and
  of ``runner serve`` of the echo config (until its first echo, then
  SIGTERM), with the ten modules of the longest cumulative import time, and
  which heavy libraries were in ``sys.modules`` at the end. ``-X importtime``
  inflates every figure, and does not see modules loaded with
  ``importlib.import_module`` (the registry's plugin modules; the imports
  inside them it does see): read its table for where the time goes and the
  CPU rows for how much.
* **idle**: ``--idle-jobs`` hourly ``sleep`` jobs plus one echo listener
  (runner with history off and on), and the bare server, all running at the
  same time; after READY (or the port) and 2 s of settling (the jobs' first
  runs are spread over 1 s), the CPU of every thread of each process tree
  (schedstat, nanoseconds) over ``--idle-seconds``, and its RSS. The runners
  have ``NOTIFY_SOCKET`` set, as under systemd (so their once-per-10 s
  ``STATUS=`` refresh counts).

Every child runs with its bytecode cached (``PYTHONPYCACHEPREFIX`` in this
run's temporary folder, filled by an untimed warm-up start), as an installed
runner has its ``.pyc`` files: a checkout run with ``PYTHONDONTWRITEBYTECODE``
would otherwise compile runner's own modules at every start.

Spawn measures run as interleaved trials (``--trials``, default 10):
median (min-max), and ratios against the bare server.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BARE_ECHO_SERVER,
    PYTHON,
    Trials,
    _fmt,
    arguments,
    descendants,
    describe,
    free_port,
    machine,
    process,
    source_at,
    tree_rss,
    write_results,
)

#: Libraries a config of echo and sleep jobs does not need; `runner serve`
#: should not import them (tests/bench/test_bench_footprint.py asserts the first four).
HEAVY = (
    "httpx",
    "aiohttp",
    "playwright",
    "prometheus_client",
    "httpcore",
    "dns",
    "jmespath",
    "asyncpg",
    "apprise",
    "jsonschema",
    "rich",
    "sqlite3",
    "runner.web",
    "runner.report",
    "runner.history.sqlite",
)

SPAWN_TIMEOUT = 20.0


# --- the two servers ---------------------------------------------------------


def runner_argv(config: Path) -> list[str]:
    """``runner serve CONFIG`` as people run it: the console script of this venv."""
    script = Path(PYTHON).parent / "runner"
    if script.exists():
        return [str(script), "serve", str(config)]
    return [PYTHON, "-m", "runner", "serve", str(config)]


def bare_argv(port: int) -> list[str]:
    return [PYTHON, "-c", BARE_ECHO_SERVER, str(port)]


def write_config(
    folder: Path, name: str, port: int, *, sleep_jobs: int = 1, history: bool = False
) -> Path:
    lines = []
    if history:
        lines += ["history:", f"  path: {folder / (name + '.sqlite3')}"]
    else:
        lines += ["history:", "  enabled: false"]
    lines += [
        "jobs:",
        "  - name: echo",
        "    plugin: echo-listener",
        "    options:",
        f"      port: {port}",
    ]
    for i in range(sleep_jobs):
        lines += [f"  - name: nap-{i}", "    plugin: sleep", "    interval: 1h"]
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextlib.contextmanager
def notify_socket(folder: Path) -> Iterator[tuple[socket.socket, str]]:
    """A systemd-style notify socket: a Unix datagram socket and its path."""
    path = folder / f"notify-{time.monotonic_ns()}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        yield sock, str(path)
    finally:
        sock.close()
        with contextlib.suppress(OSError):
            path.unlink()


def wait_ready(sock: socket.socket, child: subprocess.Popen[bytes], timeout: float) -> None:
    """Block until a datagram holding the line READY=1 arrives."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or child.poll() is not None:
            raise RuntimeError(f"no READY=1 within {timeout:g} s (exit code {child.poll()})")
        sock.settimeout(min(left, 0.5))
        try:
            message = sock.recv(4096)
        except TimeoutError:
            continue
        if b"READY=1" in message.split(b"\n"):
            return


def wait_accepting(port: int, child: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError(f"port {port} not accepting within {timeout:g} s") from None
            time.sleep(0.001)


def wait_echo(port: int, child: subprocess.Popen[bytes], timeout: float) -> None:
    """Connect until a line sent comes back whole."""
    line = b"footprint\n"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(line)
                got = b""
                while not got.endswith(b"\n"):
                    chunk = conn.recv(64)
                    if not chunk:
                        break
                    got += chunk
                if got == line:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline or child.poll() is not None:
            raise RuntimeError(f"no echo on port {port} within {timeout:g} s")
        time.sleep(0.001)


#: Set by main(): where the children keep their compiled bytecode.
PYCACHE: dict[str, str] = {}


def tree_schedstat(pid: int) -> tuple[float, float]:
    """Seconds on a CPU and seconds waiting for one (runnable, not running), of
    every live thread of pid's tree, from /proc/PID/task/TID/schedstat:
    nanoseconds, where /proc/PID/stat counts 10 ms ticks. The wait is what a
    busy machine added to the wall clock."""
    running = waiting = 0
    for member in descendants(pid):
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{member}/task"):
                with contextlib.suppress(OSError, ValueError):
                    fields = Path(f"/proc/{member}/task/{task}/schedstat").read_text().split()
                    running += int(fields[0])
                    waiting += int(fields[1])
    return running / 1e9, waiting / 1e9


def clean_env(**extra: str) -> dict[str, str]:
    """The children's environment: no systemd variables of ours, and bytecode
    cached (see :func:`main`)."""
    drop = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PYCACHE)
    env.update(extra)
    return env


# --- spawn measures -----------------------------------------------------------


def runner_spawn(
    folder: Path, *, history: bool, env: Mapping[str, str] | None = None
) -> Callable[[], dict[str, float]]:
    def measure() -> dict[str, float]:
        out: dict[str, float] = {}
        for what in ("ready", "echo"):
            port = free_port()
            config = write_config(folder, f"spawn-{what}", port, history=history)
            with notify_socket(folder) as (sock, address):
                started = time.perf_counter()
                child_env = clean_env(NOTIFY_SOCKET=address, **(env or {}))
                with process(runner_argv(config), env=child_env) as child:
                    if what == "ready":
                        wait_ready(sock, child, SPAWN_TIMEOUT)
                    else:
                        wait_echo(port, child, SPAWN_TIMEOUT)
                    out[f"{what}_ms"] = (time.perf_counter() - started) * 1000
                    if what == "echo":
                        running, waiting = tree_schedstat(child.pid)
                        out["echo_cpu_ms"] = running * 1000
                        out["echo_wait_ms"] = waiting * 1000
        return out

    return measure


def bare_spawn() -> dict[str, float]:
    out: dict[str, float] = {}
    for what in ("ready", "echo"):
        port = free_port()
        started = time.perf_counter()
        with process(bare_argv(port), env=clean_env()) as child:
            if what == "ready":
                wait_accepting(port, child, SPAWN_TIMEOUT)
            else:
                wait_echo(port, child, SPAWN_TIMEOUT)
            out[f"{what}_ms"] = (time.perf_counter() - started) * 1000
            if what == "echo":
                running, waiting = tree_schedstat(child.pid)
                out["echo_cpu_ms"] = running * 1000
                out["echo_wait_ms"] = waiting * 1000
    return out


def import_wall(
    statement: str, env: Mapping[str, str] | None = None
) -> Callable[[], dict[str, float]]:
    def measure() -> dict[str, float]:
        started = time.perf_counter()
        subprocess.run([PYTHON, "-c", statement], check=True, env=clean_env(**(env or {})))
        return {"import_ms": (time.perf_counter() - started) * 1000}

    return measure


def warm_up(folder: Path) -> None:
    """One start of each server, untimed: compiles bytecode, warms the page cache."""
    runner_spawn(folder, history=True)()
    bare_spawn()
    import_wall("import runner.cli")()


def both(*measures: Callable[[], dict[str, float]]) -> Callable[[], dict[str, float]]:
    def measure() -> dict[str, float]:
        out: dict[str, float] = {}
        for one in measures:
            out.update(one())
        return out

    return measure


# --- import cost by layer ------------------------------------------------------

#: What runner serve imports, as layers each adding to the one before: the CPU
#: of a fresh interpreter importing them (getrusage of the child, exit
#: included), so each row's increment is what that layer costs.
LAYERS = (
    ("python", "pass"),
    ("+ asyncio", "import asyncio"),
    ("+ importlib.metadata", "import importlib.metadata"),
    (
        "+ structlog (without rich)",
        "import sys\n"
        "sys.modules['rich'] = sys.modules['greenlet'] = None\n"
        "import structlog\n"
        "del sys.modules['rich'], sys.modules['greenlet']",
    ),
    ("+ pydantic", "import pydantic.main, pydantic.fields"),
    ("+ yaml", "import yaml"),
    (
        "+ runner (cli, echo-listener, sleep)",
        "import runner.cli, runner.builtins.services.echo_listener, runner.builtins.sleep",
    ),
)


def layer_cpu(upto: int) -> Callable[[], dict[str, float]]:
    statement = "\n".join(code for _, code in LAYERS[: upto + 1])

    def measure() -> dict[str, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([PYTHON, "-c", statement], check=True, env=clean_env())
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return {"cpu_ms": used * 1000}

    return measure


def layer_table(trials: Trials) -> str:
    lines = [
        "### import cost by layer (CPU of a fresh interpreter, exit included)",
        "",
        "| layer | CPU ms, cumulative | this layer |",
        "|---|---|---|",
    ]
    previous = 0.0
    for name, _ in LAYERS:
        values = trials.values(name, "cpu_ms")
        median = trials.median(name, "cpu_ms")
        lines.append(
            f"| {name} | {_fmt(median)} ({_fmt(min(values))}-{_fmt(max(values))}) "
            f"| {_fmt(median - previous)} |"
        )
        previous = median
    text = "\n".join(lines) + "\n"
    print("\n" + text, flush=True)
    return text


# --- -X importtime -------------------------------------------------------------


def parse_importtime(stderr: str) -> list[dict[str, Any]]:
    """``-X importtime`` lines as {module, self_us, cumulative_us, depth}."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|")
        if not self_us.strip().isdigit():  # the header line
            continue
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append(
            {
                "module": name.strip(),
                "self_us": int(self_us),
                "cumulative_us": int(cumulative_us),
                "depth": depth,
            }
        )
    return rows


def import_profile(rows: list[dict[str, Any]], loaded: set[str]) -> dict[str, Any]:
    """The ten longest cumulative imports, and which of HEAVY are in ``loaded``
    (``sys.modules`` at the end: -X importtime lists failed imports too)."""
    top = sorted(rows, key=lambda r: r["cumulative_us"], reverse=True)[:10]
    return {
        "modules": len(rows),
        "total_self_ms": sum(r["self_us"] for r in rows) / 1000,
        "top_cumulative": [
            {"module": r["module"], "cumulative_ms": r["cumulative_us"] / 1000} for r in top
        ],
        "heavy_imported": {name: name in loaded for name in HEAVY},
    }


#: ``runner ARGS`` as the console script runs it (runner.cli.main), then the
#: names in sys.modules written as JSON to the file named first.
MAIN_THEN_MODULES = """\
import json, sys
from runner.cli import main
out = sys.argv.pop(1)
code = main(sys.argv[1:])
with open(out, "w") as f:
    json.dump(sorted(n for n, m in sys.modules.items() if m is not None), f)
sys.exit(code)
"""


def importtime_cli() -> dict[str, Any]:
    statement = "import json, sys, runner.cli; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(),
    )
    return import_profile(parse_importtime(done.stderr), set(json.loads(done.stdout)))


def importtime_serve(folder: Path) -> dict[str, Any]:
    """``runner serve`` of the echo config until its first echo, then SIGTERM."""
    port = free_port()
    config = write_config(folder, "importtime", port)
    modules = folder / "modules.json"
    argv = [PYTHON, "-X", "importtime", "-c", MAIN_THEN_MODULES, str(modules)]
    with tempfile.TemporaryFile("w+") as err:
        with process([*argv, "serve", str(config)], env=clean_env(), stderr=err) as child:
            wait_echo(port, child, SPAWN_TIMEOUT)
        if child.returncode != 0:
            raise RuntimeError(f"runner serve exited with {child.returncode} on SIGTERM")
        err.seek(0)
        return import_profile(parse_importtime(err.read()), set(json.loads(modules.read_text())))


def import_table(title: str, profile: Mapping[str, Any]) -> str:
    lines = [
        f"### {title}",
        "",
        f"{profile['modules']} modules, {profile['total_self_ms']:.0f} ms in all "
        "(sum of self times under -X importtime)",
        "",
        "| module | cumulative ms |",
        "|---|---|",
    ]
    lines += [f"| {r['module']} | {r['cumulative_ms']:.1f} |" for r in profile["top_cumulative"]]
    imported = [name for name, yes in profile["heavy_imported"].items() if yes]
    lines += ["", "imported of " + ", ".join(HEAVY) + ": " + (", ".join(imported) or "none")]
    text = "\n".join(lines) + "\n"
    print("\n" + text, flush=True)
    return text


# --- idle ------------------------------------------------------------------------


def idle_round(
    folder: Path, jobs: int, seconds: float, baseline: tuple[str, dict[str, str]] | None
) -> dict[str, dict[str, float]]:
    """Every variant at once, each its own process tree, over one window."""
    runners: list[tuple[str, bool, dict[str, str]]] = [
        ("runner", False, {}),
        ("runner (history on)", True, {}),
    ]
    if baseline is not None:
        runners.append((baseline[0], False, baseline[1]))
    with contextlib.ExitStack() as stack:
        children: dict[str, subprocess.Popen[bytes]] = {}
        for i, (name, history, env) in enumerate(runners):
            port = free_port()
            config = write_config(folder, f"idle-{i}", port, sleep_jobs=jobs, history=history)
            sock, address = stack.enter_context(notify_socket(folder))
            child = stack.enter_context(
                process(runner_argv(config), env=clean_env(NOTIFY_SOCKET=address, **env))
            )
            wait_ready(sock, child, 60)
            # Later STATUS= datagrams are dropped by the daemon if nobody
            # reads (its socket is non-blocking): nothing to drain.
            children[name] = child
        port = free_port()
        bare = stack.enter_context(process(bare_argv(port), env=clean_env()))
        wait_echo(port, bare, SPAWN_TIMEOUT)
        children["bare asyncio"] = bare
        time.sleep(2.0)  # first runs are spread over 1 s; the heap is settled after
        # schedstat, not /proc/PID/stat: the target (0.01 s a minute) is one
        # of stat's 10 ms ticks. The idle processes start no threads or
        # children during the window, so every live thread's sum is complete.
        before = {name: tree_schedstat(child.pid)[0] for name, child in children.items()}
        time.sleep(seconds)
        out = {}
        for name, child in children.items():
            used = tree_schedstat(child.pid)[0] - before[name]
            out[name] = {
                "idle_cpu_s": used,
                "idle_cpu_s_per_60s": used * 60 / seconds,
                "idle_rss_mib": tree_rss(child.pid) / 2**20,
            }
        return out


# --- main --------------------------------------------------------------------------


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], trials=10)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--idle-jobs", type=int, default=1000)
    parser.add_argument("--idle-rounds", type=int, default=1)
    parser.add_argument(
        "--baseline",
        metavar="COMMIT",
        help="also time runner's src/ as of COMMIT (exported, run through PYTHONPATH) "
        "in the start-up trials: before and after in one run",
    )
    args = parser.parse_args()
    if args.smoke:
        args.idle_seconds = min(args.idle_seconds, 2.0)
        args.idle_jobs = min(args.idle_jobs, 50)
    info = machine()
    print(describe(info), flush=True)
    tables: list[str] = []
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        folder = Path(tmp)
        # An installed runner has its .pyc files; a development checkout run
        # with PYTHONDONTWRITEBYTECODE (as scripts/dev.sh sets it) compiles
        # runner's own modules at every start, about 25 ms. The children
        # keep bytecode in a folder of this run's, filled by a warm-up.
        PYCACHE["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        warm_up(folder)

        variants = {
            "bare asyncio": both(bare_spawn, import_wall("import asyncio")),
            "runner": both(runner_spawn(folder, history=False), import_wall("import runner.cli")),
            "runner (history on)": runner_spawn(folder, history=True),
        }
        baseline: tuple[str, dict[str, str]] | None = None
        if args.baseline:
            old = {"PYTHONPATH": str(source_at(args.baseline, folder / "baseline"))}
            name = f"runner @ {args.baseline}"
            baseline = (name, old)
            variants[name] = both(
                runner_spawn(folder, history=False, env=old),
                import_wall("import runner.cli", env=old),
            )
            variants[name]()  # its warm-up
        print("spawn to ready, spawn to first echo, import", flush=True)
        spawn = Trials(args.trials)
        spawn.run(variants)
        measures = [
            ("ready_ms", "spawn to ready (ms)"),
            ("echo_ms", "spawn to first echo (ms)"),
            ("echo_cpu_ms", "CPU to first echo (ms)"),
            ("echo_wait_ms", "waited for a CPU (ms)"),
            ("import_ms", "python -c 'import …' (ms)"),
        ]
        tables.append(
            spawn.table(
                "start-up",
                measures,
                baseline="bare asyncio",
                ratio_of=["ready_ms", "echo_ms", "echo_cpu_ms", "import_ms"],
            )
        )

        print("import cost by layer", flush=True)
        layers = Trials(args.trials)
        layers.run({name: layer_cpu(i) for i, (name, _) in enumerate(LAYERS)})
        tables.append(layer_table(layers))

        print("-X importtime", flush=True)
        imports = {"import runner.cli": importtime_cli(), "runner serve": importtime_serve(folder)}
        tables += [import_table(f"-X importtime: {k}", v) for k, v in imports.items()]

        print(f"idle: {args.idle_jobs} hourly jobs + echo, {args.idle_seconds:g} s", flush=True)
        idle = Trials(args.idle_rounds)
        for _ in range(args.idle_rounds):
            window = idle_round(folder, args.idle_jobs, args.idle_seconds, baseline)
            for name, values in window.items():
                idle.samples.setdefault(name, []).append(values)
                print(f"  {name}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in values.items()))
        tables.append(
            idle.table(
                f"idle: {args.idle_jobs} hourly sleep jobs + one echo listener, "
                f"{args.idle_seconds:g} s",
                [
                    ("idle_cpu_s_per_60s", "CPU s per 60 s"),
                    ("idle_rss_mib", "RSS (MiB)"),
                ],
                baseline="bare asyncio",
                ratio_of=["idle_rss_mib"],
            )
        )

    results = {
        "spawn": spawn.summary(),
        "layers": layers.summary(),
        "imports": imports,
        "idle": idle.summary(),
    }
    bad = [
        f"{group}/{variant}/{measure}"
        for group in ("spawn", "layers", "idle")
        for variant, values in results[group].items()
        for measure, stats in values.items()
        if not all(math.isfinite(v) for v in stats.values())
    ]
    if bad:
        print("not finite: " + ", ".join(bad), file=sys.stderr)
    write_results("footprint", args, info, {**results, "tables": tables})


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main()

"""CPU per http-status check of a local nginx, against raw httpx and Prometheus blackbox_exporter.

Usage::

    .venv/bin/python bench/http_status.py [--trials 5] [--checks 2000] [--concurrency 16]
        [--serial-checks 500] [--tls-checks 500] [--run-checks 1000] [--before COMMIT]
        [--smoke] [--json PATH]

The target is Debian's nginx-light, started here with its own config in a
temp dir (one worker, no access log, a free port on 127.0.0.1) serving a
1 KiB static page; its CPU is never counted. Each check opens a fresh
connection, sends GET and reads the body. Every variant is its own process
tree, started once, warmed up (50 checks), then told to run N checks at
concurrency c per trial; the CPU of a trial is the difference of
``tree_cpu`` around it, so start-up and imports are not in it. Variants:

``runner``
    The http-status plugin as the daemon runs it: a worker process calling
    ``runner.execution.run_attempts`` (the scheduler's call; at commits before
    it, ``run_inline``, before that ``run_check_once(..., isolated=False)``) with one shared
    ``Resources``, N checks of one job with default options, c at a time.
    The scheduler's own cost per run (timer, result line) is measured by
    bench/scheduler.py, not here; ``runner run`` of a config with N jobs was
    not used because it starts every job at once (no concurrency c) and adds
    config loading and start-up to the figure.
``runner@COMMIT``
    With ``--before COMMIT``: the same worker importing runner's ``src`` as
    it was at COMMIT (``git archive`` into a temp dir), side by side.
``httpx``
    Raw httpx at the plugin's settings: one ``AsyncClient`` with
    ``verify=ssl.create_default_context()``, ``Limits(max_keepalive_connections=0)``
    (a fresh connection per request), no timeouts, ``trust_env=False``, the
    body read with ``aiter_raw`` and counted. The floor the plugin adds to.
``blackbox``
    ``prometheus-blackbox-exporter`` with an ``http_2xx`` module, asked
    ``/probe?target=...&module=http_2xx`` N times at concurrency c by a
    small asyncio client in a separate process over c keep-alive
    connections; the client's CPU is not counted, the exporter's is (its
    HTTP server and metrics rendering included: that is what a probe costs
    it). blackbox opens a fresh connection per probe and reads the body.

Measures: CPU ms per check (whole tree), checks per second (wall time of the
trial), and the ratios to blackbox and to httpx, for three sets: http at
concurrency c, http at concurrency 1 (``--serial-checks``), and https at
concurrency c (``--tls-checks``; nginx on a certificate for 127.0.0.1 signed
by a throw-away CA that every variant trusts: ``SSL_CERT_FILE`` for the
Python ones, ``tls_config.ca_file`` for blackbox; certificates verified).

The ``runner run`` set (``--run-checks N``, issue 23) is what a user runs:
``runner run CONFIG`` of a config of N http-status jobs of the page (default
options, the default config otherwise: no ``history:`` section, so SQLite
history on, in a fresh ``STATE_DIRECTORY`` per trial; result lines as JSON to
a file on /dev/shm; the default ``--loop``, uvloop when it is installed, and
``--loop asyncio`` beside it; bytecode cached, as an installed runner has it),
a process of its own whose CPU
(its own and its reaped children's, from ``wait4``) is taken whole, start-up,
imports and config included. ``runner check`` of the same config is the same
start-up, imports and config loading without the runs: the run's CPU
minus the check's is what the N checks cost, which is compared with
blackbox_exporter's CPU for N probes at concurrency N (``runner run``
starts every check at once). Also shown: ``runner run`` with ``history:
{enabled: false}`` (what history adds), and with ``--before``, both
commands at that commit.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    PYTHON,
    Trials,
    arguments,
    describe,
    free_port,
    machine,
    need,
    process,
    source_at,
    tree_cpu,
    wait_for_port,
    write_results,
)

PAGE_BYTES = 1024
WARM_UP = 50
RUNNER = str(Path(PYTHON).with_name("runner"))

# A worker reads "N C" lines on stdin, runs N checks at concurrency C and
# answers "ok" or "failed: ..." on stdout; EOF ends it.
_LOOP = r"""
import asyncio, sys

async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await setup()
    for scheme in URLS:
        await batch(WARM_UP, 4, scheme)
    print("ready", flush=True)
    while line := await reader.readline():
        n, c, scheme = line.split()
        try:
            await batch(int(n), int(c), scheme.decode())
        except Exception as exc:
            print(f"failed: {exc!r}", flush=True)
        else:
            print("ok", flush=True)
    await teardown()

async def batch(n, c, scheme):
    left = n
    failures = []
    async def lane():
        nonlocal left
        while left > 0:
            left -= 1
            problem = await one(scheme)
            if problem is not None:
                failures.append(problem)
    await asyncio.gather(*(lane() for _ in range(c)))
    if failures:
        raise RuntimeError(f"{len(failures)} of {n} checks failed, first: {failures[0]}")

asyncio.run(main())
"""

RUNNER_WORKER = r"""
try:
    from runner.builtins.http.status import HttpStatus
except ImportError:  # --before the built-ins were grouped (issue 19)
    from runner.builtins.http_status import HttpStatus
try:
    from runner.execution import AbandonedRuns, run_attempts
except ImportError:  # --before a commit older than run_attempts
    try:
        from runner.execution import run_inline
    except ImportError:  # older than run_inline
        from runner.execution import run_check_once

        async def run_inline(check, *, on_abandon, **kwargs):
            return await run_check_once(check, isolated=False, **kwargs)
else:
    abandoned = AbandonedRuns()

    async def run_inline(check, *, on_abandon, **kwargs):
        records = []
        await run_attempts(check, deliver=records.append, abandoned=abandoned, **kwargs)
        return records[0]
from runner.plugin import Status
from runner.resources import Resources

checks = {
    scheme: HttpStatus(HttpStatus.Options.model_validate({"url": url}))
    for scheme, url in URLS.items()
}
resources = Resources()

async def setup():
    pass

async def teardown():
    await resources.aclose()

async def one(scheme):
    record = await run_inline(
        checks[scheme], job="bench", plugin="http-status", timeout=10, resources=resources,
        on_abandon=print,
    )
    if record.result.status is not Status.OK:
        return f"{record.result.status}: {record.result.message}"
"""

HTTPX_WORKER = r"""
import ssl
import httpx

client = httpx.AsyncClient(
    verify=ssl.create_default_context(),
    limits=httpx.Limits(max_keepalive_connections=0, max_connections=None),
    timeout=None,
    trust_env=False,
)

async def setup():
    pass

async def teardown():
    await client.aclose()

async def one(scheme):
    async with client.stream("GET", URLS[scheme]) as response:
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
    if response.status_code != 200 or size != PAGE_BYTES:
        return f"status {response.status_code}, {size} bytes"
"""

# Drives blackbox over c keep-alive connections; raw asyncio streams so the
# driver stays light (its CPU is not counted, but it shares the machine).
BLACKBOX_DRIVER = r"""
connections = []
REQUESTS = {
    scheme: (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    for scheme, path in URLS.items()
}

async def setup():
    pass

async def teardown():
    for _, writer in connections:
        writer.close()

async def one(scheme):
    if not connections:
        reader, writer = await asyncio.open_connection("127.0.0.1", BLACKBOX_PORT)
    else:
        reader, writer = connections.pop()
    writer.write(REQUESTS[scheme])
    head = await reader.readuntil(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length is not None:
        body = await reader.readexactly(length)
    else:  # chunked, as Go sends a body past its 4 KiB buffer
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")  # the empty trailer
        body = b"".join(parts)
    connections.append((reader, writer))
    if b"probe_success 1" not in body:
        return "no probe_success 1 in: " + body.decode(errors="replace")[-300:]
"""


@contextlib.contextmanager
def nginx(folder: Path, cert: Path, key: Path) -> Iterator[dict[str, str]]:
    """Debian's nginx serving a 1 KiB page over http and https; yields the URL per scheme."""
    binary = need("nginx", "nginx-light")
    root = folder / "nginx"
    folder.chmod(0o755)  # nginx's worker runs as nobody when started as root
    (root / "www").mkdir(parents=True)
    root.chmod(0o755)  # the worker runs as nobody when started as root
    (root / "www").chmod(0o755)
    line = b"runner http-status benchmark page\n"
    (root / "www" / "index.html").write_bytes((line * (PAGE_BYTES // len(line) + 1))[:PAGE_BYTES])
    port, tls_port = free_port(), free_port()
    (root / "nginx.conf").write_text(
        textwrap.dedent(
            f"""\
            daemon off;
            worker_processes 1;
            pid {root}/nginx.pid;
            error_log {root}/error.log;
            events {{ worker_connections 4096; }}
            http {{
                access_log off;
                client_body_temp_path {root}/client_body;
                proxy_temp_path {root}/proxy;
                fastcgi_temp_path {root}/fastcgi;
                uwsgi_temp_path {root}/uwsgi;
                scgi_temp_path {root}/scgi;
                server {{
                    listen 127.0.0.1:{port} backlog=4096;
                    listen 127.0.0.1:{tls_port} ssl backlog=4096;
                    ssl_certificate {cert};
                    ssl_certificate_key {key};
                    root {root}/www;
                }}
            }}
            """
        )
    )
    with process([binary, "-c", str(root / "nginx.conf"), "-p", str(root)], stop_signal=15):
        wait_for_port(port)
        wait_for_port(tls_port)
        yield {
            "http": f"http://127.0.0.1:{port}/index.html",
            "https": f"https://127.0.0.1:{tls_port}/index.html",
        }


@contextlib.contextmanager
def blackbox(folder: Path, ca: Path) -> Iterator[tuple[int, int]]:
    """blackbox_exporter with an http_2xx module; yields its port and pid."""
    binary = need("prometheus-blackbox-exporter", "prometheus-blackbox-exporter")
    config = folder / "blackbox.yml"
    config.write_text(
        "modules:\n"
        "  http_2xx:\n"
        "    prober: http\n"
        "    timeout: 10s\n"
        "    http:\n"
        "      preferred_ip_protocol: ip4\n"
        "      tls_config:\n"
        f"        ca_file: {ca}\n"
    )
    port = free_port()
    argv = [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"]
    with process(argv) as exporter:
        wait_for_port(port)
        yield port, exporter.pid


def start_worker(
    stack: contextlib.ExitStack, name: str, body: str, env: dict[str, str] | None = None
) -> Callable[[int, int, str], tuple[float, float]]:
    """Start a worker; return run(n, c, scheme) -> (CPU seconds of its tree, wall seconds)."""
    code = body + _LOOP.replace("WARM_UP", str(WARM_UP))
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    stack.callback(_stop, child)
    assert child.stdin is not None and child.stdout is not None
    stdin, stdout = child.stdin, child.stdout
    first = stdout.readline().decode().strip()
    if first != "ready":
        raise SystemExit(f"{name}: the worker did not start (said {first!r})")

    def run(n: int, c: int, scheme: str) -> tuple[float, float]:
        before = tree_cpu(child.pid)
        started = time.perf_counter()
        stdin.write(f"{n} {c} {scheme}\n".encode())
        stdin.flush()
        answer = stdout.readline().decode().strip()
        wall = time.perf_counter() - started
        cpu = tree_cpu(child.pid) - before
        if answer != "ok":
            raise SystemExit(f"{name}: {answer or 'the worker died'}")
        return cpu, wall

    return run


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.stdin is not None:
        with contextlib.suppress(OSError):
            child.stdin.close()
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _constants(**values: Any) -> str:
    return "".join(f"{name} = {value!r}\n" for name, value in values.items())


def certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for 127.0.0.1 it signed: (ca, cert, key)."""
    openssl = need("openssl", "openssl")
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, request = folder / "cert.pem", folder / "cert.key", folder / "cert.csr"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*argv: str) -> None:
        subprocess.run([openssl, *argv], check=True, capture_output=True)

    run("req", "-x509", *ec, "-days", "2", "-subj", "/CN=runner bench CA",
        "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    run("req", *ec, "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(request))
    extensions = folder / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1\n")
    signed_by = ["-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial"]
    run("x509", "-req", "-in", str(request), *signed_by, "-days", "2",
        "-extfile", str(extensions), "-out", str(cert))  # fmt: skip
    return ca, cert, key


def scratch_dir() -> str | None:
    """/dev/shm when there is one: N result lines written to a disk would
    measure the disk."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def run_config(folder: Path, url: str, checks: int, *, history: bool) -> Path:
    """A config of ``checks`` http-status jobs of ``url``, default options;
    the default config (no ``history:`` section) unless ``history`` is False."""
    head = "" if history else "history:\n  enabled: false\n"
    lines = [head, "jobs:\n"]
    lines.append(
        f"  - {{name: http-0, plugin: http-status, options: &target {{url: {json.dumps(url)}}}}}\n"
    )
    lines += [
        f"  - {{name: http-{i}, plugin: http-status, options: *target}}\n" for i in range(1, checks)
    ]
    path = folder / ("runner.yaml" if history else "runner-no-history.yaml")
    path.write_text("".join(lines))
    return path


def runner_command(
    command: str,
    config: Path,
    folder: Path,
    *,
    src: Path | None = None,
    loop: str | None = None,
) -> Callable[[], tuple[float, float]]:
    """``runner COMMAND CONFIG`` as a process of its own; returns a function
    that starts it, waits for it and returns (CPU seconds of it and its reaped
    children, wall seconds). A fresh state folder each time (the default
    config's SQLite history starts empty); an exit status other than 0 ends
    the benchmark."""
    program = [PYTHON, "-m", "runner"] if src is not None else [RUNNER]
    argv = [*program, command]
    if command == "run":
        argv += ["--log-format", "json"]
    if loop is not None:
        argv += ["--loop", loop]
    argv.append(str(config))
    counter = 0

    def once() -> tuple[float, float]:
        nonlocal counter
        counter += 1
        state = folder / f"state-{command}-{counter}"
        state.mkdir()
        env = {**os.environ, "STATE_DIRECTORY": str(state)}
        # An installed runner has its .pyc files; scripts/dev.sh sets this.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if src is not None:
            env["PYTHONPATH"] = str(src)
        with tempfile.TemporaryFile(dir=scratch_dir()) as out:
            started = time.perf_counter()
            child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
            _, status, usage = os.wait4(child.pid, 0)
            wall = time.perf_counter() - started
            child.returncode = os.waitstatus_to_exitcode(status)
            if child.returncode != 0:
                out.seek(0)
                tail = out.read()[-2000:].decode(errors="replace")
                raise SystemExit(f"runner {command} exited {child.returncode}:\n{tail}")
        shutil.rmtree(state, ignore_errors=True)
        return usage.ru_utime + usage.ru_stime, wall

    return once


def run_set(
    args: Any,
    folder: Path,
    url: str,
    blackbox_run: Callable[[int, int, str], tuple[float, float]],
    src: Path | None,
) -> tuple[list[str], dict[str, Any]]:
    """``runner run`` of N checks, less ``runner check``, against blackbox's N
    probes at concurrency N: the tables and the JSON of the set."""
    checks = args.run_checks
    default = run_config(folder, url, checks, history=True)
    no_history = run_config(folder, url, checks, history=False)
    commands: dict[str, Callable[[], tuple[float, float]]] = {
        "runner run": runner_command("run", default, folder),
        "runner run, asyncio loop": runner_command("run", default, folder, loop="asyncio"),
        "runner run, history off": runner_command("run", no_history, folder),
        "runner check": runner_command("check", default, folder),
    }
    # Each run less the check of the same commit.
    check_of = {name: "runner check" for name in commands if name != "runner check"}
    if src is not None:
        at = f"@{args.before}"
        commands[f"runner run{at}"] = runner_command("run", default, folder, src=src)
        commands[f"runner run{at}, asyncio loop"] = runner_command(
            "run", default, folder, src=src, loop="asyncio"
        )
        commands[f"runner check{at}"] = runner_command("check", default, folder, src=src)
        check_of[f"runner run{at}"] = check_of[f"runner run{at}, asyncio loop"] = (
            f"runner check{at}"
        )
    for once in commands.values():  # caches warm: bytecode, the page cache
        once()
    blackbox_run(checks, checks, "http")  # its driver's N connections opened

    def measure_command(once: Callable[[], tuple[float, float]]) -> Callable[[], dict[str, float]]:
        def measure() -> dict[str, float]:
            cpu, wall = once()
            return {"cpu_s": cpu, "wall_s": wall}

        return measure

    def measure_blackbox() -> dict[str, float]:
        cpu, wall = blackbox_run(checks, checks, "http")
        return {"cpu_s": cpu, "wall_s": wall}

    variants = {name: measure_command(once) for name, once in commands.items()}
    variants["blackbox"] = measure_blackbox
    print(f"\nrunner run of {checks} http checks against blackbox at concurrency {checks}:")
    trials = Trials(args.trials)
    trials.run(variants)
    tables = [
        trials.table(
            f"runner run of {checks} http-status checks (whole process) and runner check "
            f"of the same config; blackbox_exporter's {checks} probes at concurrency {checks}",
            [("cpu_s", "CPU s"), ("wall_s", "wall s")],
        )
    ]
    # Per round: each runner run less the same round's runner check (of the
    # same commit), over the same round's blackbox.
    net = Trials(args.trials)
    for round_no in range(args.trials):
        bb = trials.samples["blackbox"][round_no]["cpu_s"]
        for name, check_name in check_of.items():
            run_cpu = trials.samples[name][round_no]["cpu_s"]
            check_cpu = trials.samples[check_name][round_no]["cpu_s"]
            net.samples.setdefault(name, []).append(
                {
                    "cpu_ms_per_check": (run_cpu - check_cpu) * 1000 / checks,
                    "vs_blackbox": (run_cpu - check_cpu) / bb,
                }
            )
        net.samples.setdefault("blackbox", []).append(
            {"cpu_ms_per_check": bb * 1000 / checks, "vs_blackbox": 1.0}
        )
    tables.append(
        net.table(
            f"The {checks} checks' CPU: runner run less runner check (same round), "
            f"against blackbox_exporter",
            [("cpu_ms_per_check", "CPU ms / check"), ("vs_blackbox", "vs blackbox, per round")],
            baseline="blackbox",
            ratio_of=["cpu_ms_per_check"],
        )
    )
    data = {
        "checks": checks,
        "concurrency": checks,
        "variants": trials.summary(),
        "net": net.summary(),
    }
    return tables, data


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=2000, help="checks per trial (default 2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="checks at once (default 16)")
    parser.add_argument(
        "--serial-checks",
        type=int,
        default=500,
        help="http checks per trial at concurrency 1 (0: skip; default 500)",
    )
    parser.add_argument(
        "--tls-checks",
        type=int,
        default=500,
        help="https checks per trial at the concurrency (0: skip; default 500)",
    )
    parser.add_argument(
        "--run-checks",
        type=int,
        default=1000,
        help="http-status jobs in the `runner run` set, against blackbox at that "
        "concurrency (0: skip; default 1000)",
    )
    parser.add_argument(
        "--before", metavar="COMMIT", help="also run the runner variant as it was at COMMIT"
    )
    args = parser.parse_args()
    if args.smoke:
        # Enough for a few of /proc's 10 ms CPU ticks in every variant.
        args.checks, args.serial_checks, args.tls_checks, args.run_checks = 300, 100, 50, 50

    info = machine()
    print(describe(info), flush=True)
    data: dict[str, Any] = {"page_bytes": PAGE_BYTES, "results": {}}
    tables = []
    with (
        tempfile.TemporaryDirectory(prefix="runner-bench-http-") as temp,
        contextlib.ExitStack() as stack,
    ):
        folder = Path(temp)
        ca, cert, key = certificates(folder)
        urls = stack.enter_context(nginx(folder, cert, key))
        port, exporter = stack.enter_context(blackbox(folder, ca))
        trust = {"SSL_CERT_FILE": str(ca)}  # ssl.create_default_context() reads it
        workers: dict[str, Callable[[int, int, str], tuple[float, float]]] = {}
        workers["runner"] = start_worker(
            stack, "runner", _constants(URLS=urls) + RUNNER_WORKER, env=trust
        )
        src = None
        if args.before:
            src = source_at(args.before, folder / f"runner-{args.before}")
            workers[f"runner@{args.before}"] = start_worker(
                stack,
                f"runner@{args.before}",
                _constants(URLS=urls) + RUNNER_WORKER,
                env={**trust, "PYTHONPATH": str(src)},
            )
        workers["httpx"] = start_worker(
            stack, "httpx", _constants(URLS=urls, PAGE_BYTES=PAGE_BYTES) + HTTPX_WORKER, env=trust
        )
        probe_paths = {
            scheme: f"/probe?target={url}&module=http_2xx" for scheme, url in urls.items()
        }
        driver = start_worker(
            stack,
            "blackbox driver",
            "import asyncio\n" + _constants(URLS=probe_paths, BLACKBOX_PORT=port) + BLACKBOX_DRIVER,
        )

        def blackbox_run(n: int, c: int, scheme: str) -> tuple[float, float]:
            before = tree_cpu(exporter)
            _, wall = driver(n, c, scheme)
            return tree_cpu(exporter) - before, wall

        workers["blackbox"] = blackbox_run

        if args.run_checks > 0:
            run_tables, data["results"]["runner_run"] = run_set(
                args, folder, urls["http"], blackbox_run, src
            )
            tables += run_tables

        sizes = [("http", args.concurrency, args.checks)] if args.checks > 0 else []
        if args.serial_checks > 0:
            sizes.append(("http", 1, args.serial_checks))
        if args.tls_checks > 0:
            sizes.append(("https", args.concurrency, args.tls_checks))
        for scheme, concurrency, checks in sizes:
            print(f"\n{checks} {scheme} checks at concurrency {concurrency}:", flush=True)
            trials = Trials(args.trials)
            trials.run(
                {name: _measure(run, checks, concurrency, scheme) for name, run in workers.items()}
            )
            title = f"{checks} {scheme} checks of a 1 KiB nginx page, concurrency {concurrency}"
            measures = [("cpu_ms_per_check", "CPU ms / check"), ("checks_per_s", "checks/s")]
            for baseline in ("blackbox", "httpx"):
                tables.append(
                    trials.table(
                        f"{title}, vs {baseline}",
                        measures,
                        baseline=baseline,
                        ratio_of=["cpu_ms_per_check"],
                    )
                )
            key_name = f"c{concurrency}" if scheme == "http" else f"{scheme}_c{concurrency}"
            data["results"][key_name] = {
                "scheme": scheme,
                "checks": checks,
                "concurrency": concurrency,
                "variants": trials.summary(),
            }
    data["tables"] = tables
    write_results("http_status", args, info, data)


def _measure(
    run: Callable[[int, int, str], tuple[float, float]], checks: int, concurrency: int, scheme: str
) -> Callable[[], dict[str, float]]:
    def measure() -> dict[str, float]:
        cpu, wall = run(checks, concurrency, scheme)
        return {"cpu_ms_per_check": cpu * 1000 / checks, "checks_per_s": checks / wall}

    return measure


if __name__ == "__main__":
    main()

"""Echo servers side by side: runner's echo-listener (on asyncio's loop and on
uvloop) against a bare asyncio Protocol echo server (on both loops) and socat.

Usage::

    .venv/bin/python bench/echo.py [--trials 5] [--megabytes 512] [--clients 1000]
        [--seconds 3] [--smoke] [--json PATH]

The servers, each started fresh per trial as its own process tree on 127.0.0.1:

  runner asyncio / runner uvloop
            ``runner serve --loop L`` of a config holding one echo-listener
            (``max_connections: 2000``, history off), logging JSON as a daemon does.
  bare asyncio / bare uvloop
            the asyncio documentation's echo server: an ``asyncio.Protocol``
            whose ``data_received`` writes the data back, nothing else (no
            flow control, no idle timer, no counters), in a process of its own.
  socat pipe
            ``socat -b 4096 TCP-LISTEN:P,bind=127.0.0.1,fork,reuseaddr,backlog=1024
            PIPE``: a process per connection, echoing through an unnamed pipe
            in steps of a page (larger steps can deadlock on its own pipe).
  socat cat the same with ``-b 65536 ... EXEC:cat``: two processes per
            connection, in 64 KiB steps.

Measures, the server's whole process tree (CPU and RSS from /proc, so socat's
forked children count; CPU in nanoseconds from each thread's schedstat, as
ticks rounded down per process would lose socat's short-lived children)
while this process is the client:

  MB/s          one connection: a thread sends --megabytes in 256 KiB writes
                while another reads the echo back; bytes / seconds to the last byte.
  CPU s/GB      the server tree's CPU over that transfer, per GB echoed.
  round trips/s --clients connections at once, each sending 64 bytes and waiting
                for their echo before the next, for --seconds (one epoll loop).
  CPU ms/1k rt  the server tree's CPU per 1,000 of those round trips (the
                client shares the 2 cores, so this is the steadier figure).
  RSS MiB       the server tree's RSS after a client that sends without ever
                reading has sent all it could (up to --flood MiB, for 2 s),
                measured first, on the freshly started server;
  RSS growth    the same minus the idle tree's RSS before that client connected.

Trials interleave (every variant once per round, the order rotated per
round); the tables give median (min-max) and ratios to bare asyncio.
"""

from __future__ import annotations

import contextlib
import errno
import resource
import select
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BARE_ECHO_SERVER,
    PYTHON,
    Trials,
    arguments,
    describe,
    free_port,
    machine,
    need,
    process,
    tree_cpu_precise,
    tree_rss,
    wait_for_port,
    write_results,
)

MiB = 2**20
CHUNK = 256 * 1024
MESSAGE = b"x" * 64
#: Time for a server's tree to settle after a measure (socat's children to
#: exit and be reaped, their CPU passing to their parent's count).
SETTLE = 0.3

RUNNER_CONFIG = """\
history: {{enabled: false}}
jobs:
  - name: echo
    plugin: echo-listener
    options: {{port: {port}, max_connections: 2000}}
"""


# --- the servers --------------------------------------------------------------


@contextlib.contextmanager
def runner_server(loop: str, workdir: Path) -> Iterator[tuple[int, int]]:
    port = free_port()
    config = workdir / f"echo-{port}.yaml"
    config.write_text(RUNNER_CONFIG.format(port=port))
    argv = [PYTHON, "-m", "runner", "serve", str(config), "--loop", loop, "--log-format", "json"]
    with process(argv, cwd=workdir) as child:
        wait_for_port(port, timeout=30)
        yield child.pid, port


@contextlib.contextmanager
def bare_server(loop: str, workdir: Path) -> Iterator[tuple[int, int]]:
    port = free_port()
    with process([PYTHON, "-c", BARE_ECHO_SERVER, str(port), loop]) as child:
        wait_for_port(port)
        yield child.pid, port


#: socat's two fastest echoes (its man page): through an unnamed pipe, in
#: steps of one page (a larger step can block writing into its own full pipe,
#: which only it drains: 32 KiB hung a 512 MiB transfer); or through cat, in
#: 64 KiB steps (a second process per connection).
SOCAT_FORMS = {"pipe": ("4096", "PIPE"), "cat": ("65536", "EXEC:cat")}


@contextlib.contextmanager
def socat_server(form: str) -> Iterator[tuple[int, int]]:
    socat = need("socat", "socat")
    port = free_port()
    listen = f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,backlog=1024"
    block, address = SOCAT_FORMS[form]
    with process([socat, "-b", block, listen, address]) as child:
        wait_for_port(port)
        yield child.pid, port


# --- the clients ----------------------------------------------------------------


def throughput(port: int, total: int) -> float:
    """Echo ``total`` bytes over one connection; seconds to the last byte back."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    payload = memoryview(bytes(CHUNK))
    received = 0
    failure: list[BaseException] = []

    def send() -> None:
        try:
            left = total
            while left > 0:
                sock.sendall(payload[: min(CHUNK, left)])
                left -= min(CHUNK, left)
        except BaseException as exc:  # reported by the caller
            failure.append(exc)

    buffer = bytearray(CHUNK)
    start = time.perf_counter()
    sender = threading.Thread(target=send)
    sender.start()
    try:
        while received < total:
            n = sock.recv_into(buffer)
            if n == 0:
                raise ConnectionError(f"closed after {received} of {total} bytes")
            received += n
        elapsed = time.perf_counter() - start
    finally:
        sender.join()
        sock.close()
    if failure:
        raise failure[0]
    return elapsed


def _connect_all(port: int, count: int) -> list[socket.socket]:
    """``count`` connections, in batches each answered once (so that none waits
    in a full accept queue for a SYN retransmit)."""
    socks: list[socket.socket] = []
    for start in range(0, count, 50):
        batch = [
            socket.create_connection(("127.0.0.1", port), timeout=10)
            for _ in range(min(50, count - start))
        ]
        for sock in batch:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(b"!")
        for sock in batch:
            if sock.recv(1) != b"!":
                raise ConnectionError("a connection was not echoed")
        socks.extend(batch)
    return socks


def round_trips(pid: int, port: int, clients: int, seconds: float) -> tuple[float, float]:
    """Round trips per second over ``clients`` connections, and the server
    tree's CPU seconds over the same window."""
    socks = _connect_all(port, clients)
    epoll = select.epoll()
    pending: dict[int, int] = {}
    by_fd: dict[int, socket.socket] = {}
    try:
        for sock in socks:
            sock.setblocking(False)
            by_fd[sock.fileno()] = sock
            epoll.register(sock.fileno(), select.EPOLLIN)
        done = 0
        cpu = tree_cpu_precise(pid)
        start = time.perf_counter()
        deadline = start + seconds
        for fd, sock in by_fd.items():
            sock.send(MESSAGE)
            pending[fd] = len(MESSAGE)
        while True:
            now = time.perf_counter()
            if now >= deadline:
                break
            for fd, _ in epoll.poll(deadline - now, 1024):
                sock = by_fd[fd]
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed a connection")
                pending[fd] -= len(data)
                if pending[fd] == 0:
                    done += 1
                    sock.send(MESSAGE)
                    pending[fd] = len(MESSAGE)
        elapsed = time.perf_counter() - start
    finally:
        epoll.close()
        for sock in socks:
            sock.close()
    time.sleep(SETTLE)
    # Includes the connections' ends: socat's children exiting, a server's
    # connection_lost; not their start (connected before the clock).
    return done / elapsed, tree_cpu_precise(pid) - cpu


def rss_under_a_non_reading_client(pid: int, port: int, limit: int) -> tuple[float, float]:
    """The server tree's RSS (MiB) before, and once a client that never reads
    has sent all the server would take (or ``limit`` bytes, or 2 s)."""
    time.sleep(0.2)  # socat: the child forked for wait_for_port's connection exits
    before = tree_rss(pid)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    chunk = bytes(CHUNK)
    sent = 0
    last_progress = time.monotonic()
    deadline = last_progress + 2.0
    try:
        while sent < limit and time.monotonic() < deadline:
            try:
                sent += sock.send(chunk)
                last_progress = time.monotonic()
            except BlockingIOError:
                if time.monotonic() - last_progress > 0.3:
                    break  # the server stopped reading: nothing more goes in
                select.select([], [sock], [], 0.05)
            except OSError as exc:
                if exc.errno in (errno.ECONNRESET, errno.EPIPE):
                    break
                raise
        time.sleep(0.1)  # let the server take in what is in flight
        after = tree_rss(pid)
    finally:
        sock.close()
    return before / MiB, after / MiB


# --- one trial -------------------------------------------------------------------


def trial(
    start: Callable[[], contextlib.AbstractContextManager[tuple[int, int]]],
    args: Any,
) -> dict[str, float]:
    with start() as (pid, port):
        # First, on the idle server: later phases leave buffers and (socat)
        # children behind.
        before, after = rss_under_a_non_reading_client(pid, port, args.flood * MiB)
        total = args.megabytes * MiB
        cpu = tree_cpu_precise(pid)
        seconds = throughput(port, total)
        time.sleep(SETTLE)
        cpu = tree_cpu_precise(pid) - cpu
        rate, rt_cpu = round_trips(pid, port, args.clients, args.seconds)
    return {
        "mb_s": total / 1e6 / seconds,
        "cpu_s_per_gb": cpu / (total / 1e9),
        "round_trips_s": rate,
        "cpu_ms_per_1k_rt": rt_cpu * 1000 / (rate * args.seconds / 1000),
        "rss_mib": after,
        "rss_growth_mib": after - before,
    }


def main() -> None:
    parser = arguments(__doc__.split("\n", 1)[0])
    parser.add_argument("--megabytes", type=int, default=512, help="echoed over one connection")
    parser.add_argument("--clients", type=int, default=1000, help="connections at once")
    parser.add_argument("--seconds", type=float, default=3.0, help="of round trips")
    parser.add_argument(
        "--flood", type=int, default=256, help="MiB the non-reading client tries to send"
    )
    parser.add_argument(
        "--variants",
        default="runner asyncio,runner uvloop,bare asyncio,bare uvloop,socat pipe,socat cat",
        help="comma-separated",
    )
    args = parser.parse_args()
    if args.smoke:
        args.megabytes, args.clients, args.seconds, args.flood = 64, 20, 0.3, 8
    # Each connection is a descriptor here and one in the server.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.clients + 64)), hard))

    info = machine()
    print(describe(info), flush=True)
    print(
        f"{args.megabytes} MiB over one connection; {args.clients} clients x {args.seconds:g} s "
        f"of 64-byte round trips; a non-reading client sending up to {args.flood} MiB",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-echo-"))
    servers: dict[str, Callable[[], contextlib.AbstractContextManager[tuple[int, int]]]] = {
        "runner asyncio": lambda: runner_server("asyncio", workdir),
        "runner uvloop": lambda: runner_server("uvloop", workdir),
        "bare asyncio": lambda: bare_server("asyncio", workdir),
        "bare uvloop": lambda: bare_server("uvloop", workdir),
        "socat pipe": lambda: socat_server("pipe"),
        "socat cat": lambda: socat_server("cat"),
    }
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(chosen) - set(servers)
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    trials = Trials(args.trials)
    trials.run({name: (lambda start=servers[name]: trial(start, args)) for name in chosen})
    tables = trials.table(
        "echo: one connection, 1,000 clients, a client that does not read",
        [
            ("mb_s", "MB/s"),
            ("cpu_s_per_gb", "CPU s/GB"),
            ("round_trips_s", "round trips/s"),
            ("cpu_ms_per_1k_rt", "CPU ms/1k rt"),
            ("rss_mib", "RSS MiB"),
            ("rss_growth_mib", "RSS growth MiB"),
        ],
        baseline="bare asyncio" if "bare asyncio" in chosen else None,
        ratio_of=["mb_s", "cpu_s_per_gb", "round_trips_s", "cpu_ms_per_1k_rt"],
    )
    write_results(
        "echo",
        args,
        info,
        {
            "variants": chosen,
            "summary": trials.summary(),
            "samples": trials.samples,
            "table": tables,
        },
    )
    with contextlib.suppress(OSError):
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()


if __name__ == "__main__":
    main()

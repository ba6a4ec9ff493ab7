"""The echo listener over real sockets on 127.0.0.1: no mocks."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import random
import select
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from runner.builtins.services.echo_listener import EchoListener
from runner.testing import running_service

HOST = "127.0.0.1"
#: Upper bound for anything a test waits for; the expected cases take milliseconds.
DEADLINE = 5.0

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Connect = Callable[[int], Awaitable[Stream]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Open client connections to 127.0.0.1; all are closed after the test."""
    writers: list[asyncio.StreamWriter] = []

    async def _connect(port: int) -> Stream:
        reader, writer = await asyncio.open_connection(HOST, port)
        writers.append(writer)
        return reader, writer

    yield _connect
    for writer in writers:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def echo(stream: Stream, payload: bytes) -> bytes:
    """Send ``payload`` while reading back as many bytes; return what came back."""
    reader, writer = stream

    async def send() -> None:
        writer.write(payload)
        await writer.drain()

    async with asyncio.timeout(DEADLINE):
        _, received = await asyncio.gather(send(), reader.readexactly(len(payload)))
    return received


async def read_to_eof(stream: Stream) -> bytes:
    """Read until the server closes the connection; fail if it does not within DEADLINE."""
    async with asyncio.timeout(DEADLINE):
        return await stream[0].read()


def events(logs: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    """The captured log entries with event ``name``."""
    return [entry for entry in logs if entry["event"] == name]


def test_registered_as_echo_listener() -> None:
    (entry,) = entry_points(group="runner.plugins", name="echo-listener")
    assert entry.load() is EchoListener


async def test_echoes_one_client(connect: Connect) -> None:
    with capture_logs() as logs:
        async with running_service(EchoListener, {"port": 0}) as ready:
            assert ready["host"] == HOST
            client = await connect(ready["port"])

            assert await echo(client, b"hello, listener\n") == b"hello, listener\n"

    (started,) = events(logs, "listener.started")
    assert started["host"] == HOST
    assert started["port"] == ready["port"]


async def test_echoes_fifty_concurrent_clients(connect: Connect) -> None:
    async with running_service(EchoListener, {"port": 0}) as ready:
        clients = [await connect(ready["port"]) for _ in range(50)]
        payloads = [f"client {i:02d};".encode() * 5000 for i in range(50)]  # 50 KB each

        received = await asyncio.gather(*map(echo, clients, payloads))

    for i, (sent, got) in enumerate(zip(payloads, received, strict=True)):
        assert got == sent, f"client {i} got another echo than it sent"


async def test_connections_beyond_max_are_closed_at_once(connect: Connect) -> None:
    with capture_logs() as logs:
        async with running_service(EchoListener, {"port": 0, "max_connections": 2}) as ready:
            first, second = await connect(ready["port"]), await connect(ready["port"])
            # An echo proves the server has taken each connection.
            assert await echo(first, b"one") == b"one"
            assert await echo(second, b"two") == b"two"

            third = await connect(ready["port"])
            assert await read_to_eof(third) == b""

            assert await echo(first, b"one again") == b"one again"
            assert await echo(second, b"two again") == b"two again"

            # Once a connection ends, its slot serves a new client. The server
            # frees the slot before its close reaches the client, so after the
            # EOF a new connection is sure to be taken.
            first[1].write_eof()
            assert await read_to_eof(first) == b""
            fourth = await connect(ready["port"])
            assert await echo(fourth, b"four") == b"four"

    (rejected,) = events(logs, "listener.rejected")
    assert rejected["max_connections"] == 2
    assert rejected["log_level"] == "warning"
    (stopped,) = events(logs, "listener.stopped")
    assert stopped["connections_served"] == 3
    assert stopped["connections_rejected"] == 1


async def test_idle_connection_is_closed_and_active_one_is_not(connect: Connect) -> None:
    async with running_service(EchoListener, {"port": 0, "idle_timeout": 0.3}) as ready:
        idle, active = await connect(ready["port"]), await connect(ready["port"])
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def keep_talking() -> None:
            # Data every 50 ms for 0.9 s: three times the idle timeout in
            # total, but never idle for more than a sixth of it.
            while loop.time() - started < 0.9:
                assert await echo(active, b"ping") == b"ping"
                await asyncio.sleep(0.05)

        talking = asyncio.create_task(keep_talking())
        assert await read_to_eof(idle) == b""
        idle_for = loop.time() - started
        await talking

        assert 0.25 <= idle_for < 0.9 + DEADLINE
        assert talking.done() and talking.exception() is None
        # Now the active client falls silent too.
        assert await read_to_eof(active) == b""


async def test_client_that_never_reads_is_disconnected_after_idle_timeout(
    connect: Connect,
) -> None:
    async with running_service(EchoListener, {"port": 0, "idle_timeout": 0.3}) as ready:
        _, writer = await connect(ready["port"])
        # 20 MB without reading: the server stops reading from us once our
        # echo backs up, so it receives nothing more and the idle timer fires.
        writer.write(b"x" * 20_000_000)

        async with asyncio.timeout(DEADLINE):
            with pytest.raises((ConnectionResetError, BrokenPipeError)):
                await writer.wait_closed()


async def test_port_taken_raises_error_naming_the_address() -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(OSError) as raised:
            async with running_service(EchoListener, {"port": port}):
                pytest.fail(f"the listener started on taken port {port}")

    assert raised.value.errno == errno.EADDRINUSE
    assert f"cannot listen on {HOST}:{port}: address already in use" in str(raised.value)


async def test_stopping_closes_open_connections(connect: Connect) -> None:
    with capture_logs() as logs:
        async with running_service(EchoListener, {"port": 0}) as ready:
            clients = [await connect(ready["port"]) for _ in range(3)]
            for client in clients:
                assert await echo(client, b"still here?") == b"still here?"

    for client in clients:
        assert await read_to_eof(client) == b""
    with pytest.raises(ConnectionRefusedError):
        await connect(ready["port"])
    (stopped,) = events(logs, "listener.stopped")
    assert stopped["connections_served"] == 3
    assert stopped["connections_open_at_stop"] == 3
    assert stopped["bytes_received"] == 3 * len(b"still here?")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        pytest.param({"port": 70000}, "port", id="port-too-big"),
        pytest.param({"port": -1}, "port", id="port-negative"),
        pytest.param({"max_connections": 0}, "max_connections", id="no-connections"),
        pytest.param({"idle_timeout": 0}, "idle_timeout", id="zero-idle-timeout"),
        pytest.param({"host": ""}, "host", id="empty-host"),
        pytest.param({"prot": 8000}, "prot", id="unknown-option"),
    ],
)
async def test_bad_options_are_rejected(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        async with running_service(EchoListener, options):
            pytest.fail("the listener started with bad options")


# --- Memory: a client that sends without reading -------------------------------

#: The listener under test, in its own process so that its RSS can be measured.
#: It prints its port, then runs until its stdin is closed.
LISTENER_PROCESS = textwrap.dedent(
    """
    import asyncio
    import sys

    import structlog

    from runner.builtins.services.echo_listener import EchoListener
    from runner.testing import running_service

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))


    async def main() -> None:
        async with running_service(EchoListener, {"port": 0}) as ready:
            print(ready["port"], flush=True)
            await asyncio.to_thread(sys.stdin.read)


    asyncio.run(main())
    """
)

FLOOD_LIMIT = 50_000_000
FLOOD_DEADLINE = 10.0
#: No progress for this long means the listener has stopped taking our data.
STALL = 1.0
CHUNK = 256 * 1024


@pytest.fixture
def listener_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The listener in a child process, and its port; stopped after the test."""
    stderr = (tmp_path / "listener.stderr").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", LISTENER_PROCESS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )
    try:
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], 15)
        line = proc.stdout.readline() if readable else b""
        if not line.strip().isdigit():
            proc.kill()
            proc.wait()
            log = (tmp_path / "listener.stderr").read_text()
            pytest.fail(f"the listener process did not report its port: {line!r}\n{log}")
        yield proc, int(line)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        stderr.close()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def flood(sock: socket.socket, pattern: memoryview, limit: int, deadline: float) -> int:
    """Send ``pattern`` repeated, never reading, until ``limit`` bytes, a stall or the deadline.

    ``pattern`` holds one period twice so any slice of up to a period can be
    taken without wrapping. Returns the number of bytes sent.
    """
    period = len(pattern) // 2
    sent = 0
    last_progress = time.monotonic()
    while sent < limit and time.monotonic() < deadline:
        _, writable, _ = select.select([], [sock], [], 0.1)
        if not writable:
            if time.monotonic() - last_progress > STALL:
                break
            continue
        start = sent % period
        try:
            sent += sock.send(pattern[start : start + min(CHUNK, limit - sent)])
        except BlockingIOError:
            continue
        last_progress = time.monotonic()
    return sent


def read_back(sock: socket.socket, pattern: memoryview, expected: int, deadline: float) -> int:
    """Read up to ``expected`` bytes, checking each against ``pattern``; return the count."""
    period = len(pattern) // 2
    received = 0
    while received < expected and time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.1)
        if not readable:
            continue
        data = sock.recv(min(CHUNK, expected - received))
        if not data:
            break
        start = received % period
        assert data == pattern[start : start + len(data)], f"echo differs after {received} bytes"
        received += len(data)
    return received


def read_back_exact(sock: socket.socket, expected: bytes) -> bytes:
    """Read ``len(expected)`` bytes within DEADLINE; return what came."""
    data = b""
    deadline = time.monotonic() + DEADLINE
    while len(data) < len(expected) and time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.1)
        if readable:
            chunk = sock.recv(len(expected) - len(data))
            if not chunk:
                break
            data += chunk
    return data


def test_client_that_never_reads_cannot_grow_listener_memory(
    listener_process: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = listener_process
    period = random.Random(1).randbytes(1024 * 1024)
    pattern = memoryview(period + period)

    with socket.create_connection((HOST, port), timeout=DEADLINE) as sock:
        sock.setblocking(False)
        # Warm up the connection path before taking the baseline.
        sock.sendall(b"warm-up")
        assert read_back_exact(sock, b"warm-up") == b"warm-up"
        rss_before = rss_bytes(proc.pid)

        sent = flood(sock, pattern, FLOOD_LIMIT, time.monotonic() + FLOOD_DEADLINE)
        rss_after = rss_bytes(proc.pid)
        grown = rss_after - rss_before

        assert proc.poll() is None, "the listener process died under the flood"
        assert sent < FLOOD_LIMIT, f"the listener took all {sent:,} bytes without our reading"
        assert grown < 30_000_000, (
            f"listener RSS grew by {grown / 1e6:.1f} MB ({rss_before / 1e6:.1f} -> "
            f"{rss_after / 1e6:.1f} MB) while we sent {sent / 1e6:.1f} MB without reading"
        )

        # Once we read, the listener resumes: everything comes back, in order.
        received = read_back(sock, pattern, sent, time.monotonic() + FLOOD_DEADLINE)
        assert received == sent, f"only {received:,} of {sent:,} bytes echoed after resuming"

    print(
        f"\nflood: sent {sent / 1e6:.1f} MB before stalling; listener RSS "
        f"{rss_before / 1e6:.1f} -> {rss_after / 1e6:.1f} MB (+{grown / 1e6:.2f} MB)"
    )

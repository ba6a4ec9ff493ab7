"""The tcp check against real sockets on 127.0.0.1: the daemon's own echo
listener, plain servers with a banner, and a TLS echo server with a
self-signed certificate made here. No mocks."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from helpers import closed_port, serve_until
from runner.builtins.services.echo_listener import EchoListener
from runner.builtins.tcp import READ_LIMIT, Tcp, TcpOptions, decode_escapes
from runner.plugin import Result, Status
from runner.testing import run_check, running_service

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
ServerFactory = Callable[..., Awaitable[int]]
WriteConfig = Callable[..., Path]


@pytest.fixture
async def serve() -> AsyncIterator[ServerFactory]:
    """Start servers on 127.0.0.1 running ``handler``; returns the port. Closed after the test."""
    servers: list[asyncio.Server] = []
    writers: set[asyncio.StreamWriter] = set()

    async def start(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> int:
        async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.add(writer)
            try:
                await handler(reader, writer)
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                writers.discard(writer)
                writer.close()

        server = await asyncio.start_server(guarded, "127.0.0.1", 0, ssl=ssl_context)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
    for writer in list(writers):  # held connections (Python 3.11 has no close_clients)
        writer.transport.abort()
    for server in servers:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()


def banner(
    text: bytes, *, hold: bool = False, read_first: bool = False, reset: bool = False
) -> Handler:
    """A server that sends ``text`` on connect (after the client's first bytes, with
    ``read_first``), then closes (with a reset, with ``reset``), or holds the connection."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if read_first:
            await reader.read(4096)
        writer.write(text)
        await writer.drain()
        if reset:
            # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        if hold:
            await reader.read()  # until the client goes

    return handler


def make_cert(tmp_path: Path, days: int = 30) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, valid ``days``; (cert, key) files."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / f"cert-{days}.pem", tmp_path / f"key-{days}.pem"
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        ["openssl", "req", "-x509", "-nodes", "-days", str(days), *subject, *new_key, *files],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """The certificate file and a server TLS context using it."""
    cert, key = make_cert(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context


async def check(port: int, **options: Any) -> Result:
    return await run_check(Tcp, {"host": "127.0.0.1", "port": port, **options}, timeout=5)


def test_registered_as_tcp() -> None:
    (entry,) = entry_points(group="runner.plugins", name="tcp")
    assert entry.load() is Tcp


# ------------------------------------------------------------------ plain TCP


async def test_echo_listener_answers() -> None:
    async with running_service(EchoListener) as ready:
        started = time.monotonic()
        result = await check(ready["port"], send="PING\\r\\n", expect="^PING\r\n$")
        elapsed_ms = (time.monotonic() - started) * 1000
    assert result.status is Status.OK, result.message
    assert result.message == "reply matches /^PING\r\n$/"
    fields = result.fields
    assert fields["ip"] == "127.0.0.1"
    assert fields["reply"] == "PING\r\n"
    timings = fields["timings_ms"]
    assert set(timings) == {"dns", "connect", "request", "ttfb", "transfer"}
    assert all(value >= 0 for value in timings.values())
    assert sum(timings.values()) <= elapsed_ms
    assert "cert_expires_in_days" not in fields


async def test_connect_only() -> None:
    async with running_service(EchoListener) as ready:
        result = await check(ready["port"])
    assert result.status is Status.OK
    assert result.message == f"connected to 127.0.0.1:{ready['port']}"
    assert set(result.fields["timings_ms"]) == {"dns", "connect"}


async def test_host_name_is_resolved_and_each_address_tried() -> None:
    # localhost may come first as ::1, where the listener (127.0.0.1 only) refuses.
    async with running_service(EchoListener) as ready:
        result = await run_check(Tcp, {"host": "localhost", "port": ready["port"]})
    assert result.status is Status.OK, result.message
    assert result.fields["ip"] == "127.0.0.1"


async def test_banner_matches_without_sending(serve: ServerFactory) -> None:
    port = await serve(banner(b"220 mail.test ESMTP ready\r\n", hold=True))
    result = await check(port, expect=r"^220 ")
    assert result.status is Status.OK, result.message


async def test_reply_not_matching_before_close(serve: ServerFactory) -> None:
    port = await serve(banner(b"-ERR unknown command\r\n", read_first=True))
    result = await check(port, send="PING\n", expect=r"^\+PONG")
    assert result.status is Status.FAIL
    assert result.message == (
        "reply does not match /^\\+PONG/ before the server closed the connection: "
        "got '-ERR unknown command\\r\\n'"
    )
    assert result.fields["reply"] == "-ERR unknown command\r\n"


async def test_reply_not_matching_within_the_timeout(serve: ServerFactory) -> None:
    # The server says something and then nothing: the check stops reading just
    # before the job's deadline and reports what came, not a bare timeout.
    port = await serve(banner(b"HELLO", hold=True))
    result = await run_check(Tcp, {"host": "127.0.0.1", "port": port, "expect": "^OK"}, timeout=1.0)
    assert result.status is Status.FAIL
    assert result.message == "reply does not match /^OK/ within the job's timeout (1s): got 'HELLO'"


async def test_reply_then_reset_is_judged(serve: ServerFactory) -> None:
    port = await serve(banner(b"-ERR go away\r\n", read_first=True, reset=True))
    result = await check(port, send="PING\\n", expect="PONG")
    assert result.status is Status.FAIL
    assert result.message == (
        "reply does not match /PONG/ before the server reset the connection: "
        "got '-ERR go away\\r\\n'"
    )


async def test_no_reply_at_all(serve: ServerFactory) -> None:
    port = await serve(banner(b"", read_first=True))
    result = await check(port, send="x", expect="y")
    assert result.status is Status.FAIL
    assert result.message == "no reply before the server closed the connection; expected /y/"


async def test_reset_before_any_reply_is_an_error(serve: ServerFactory) -> None:
    port = await serve(banner(b"", read_first=True, reset=True))
    result = await check(port, send="x", expect="y")
    assert result.status is Status.ERROR
    assert result.message == (
        f"connected to 127.0.0.1:{port}, but the connection broke before any reply: "
        "connection reset by the server"
    )


async def test_read_is_bounded(serve: ServerFactory) -> None:
    port = await serve(banner(b"x" * (READ_LIMIT * 4), hold=True))
    result = await check(port, expect="never")
    assert result.status is Status.FAIL
    assert result.message is not None
    assert result.message.startswith(
        f"reply does not match /never/ in the first {READ_LIMIT // 1024} KiB: got 'xxx"
    )
    assert len(result.fields["reply"]) <= 203  # shown reply is short


async def test_refused_port_is_an_error() -> None:
    port = closed_port()
    result = await check(port)
    assert result.status is Status.ERROR
    assert result.message == (
        f"cannot connect to 127.0.0.1:{port}: connection refused (nothing listens on that port?)"
    )
    assert result.fields["error_type"] == "ConnectionRefusedError"


async def test_unknown_host_is_an_error() -> None:
    result = await run_check(Tcp, {"host": "no-such-host.invalid", "port": 80})
    assert result.status is Status.ERROR
    assert result.message is not None
    assert result.message.startswith("cannot resolve 'no-such-host.invalid': ")


# ------------------------------------------------------------------ TLS


async def test_tls_echo_with_verification_off(
    serve: ServerFactory, self_signed: tuple[Path, ssl.SSLContext]
) -> None:
    _, context = self_signed
    port = await serve(echo, context)
    result = await check(port, tls=True, verify_tls=False, send="hello\\n", expect="^hello$")
    assert result.status is Status.OK, result.message
    fields = result.fields
    assert set(fields["timings_ms"]) == {"dns", "connect", "tls", "request", "ttfb", "transfer"}
    assert 29 <= fields["cert_expires_in_days"] <= 30


async def test_tls_verify_failure_is_an_error(
    serve: ServerFactory, self_signed: tuple[Path, ssl.SSLContext]
) -> None:
    _, context = self_signed
    port = await serve(echo, context)
    result = await check(port, tls=True)
    assert result.status is Status.ERROR
    assert result.message == (
        f"TLS handshake with 127.0.0.1:{port} failed: TLS certificate not trusted: "
        "self-signed certificate"
    )
    assert result.fields["error_type"] == "SSLCertVerificationError"


async def test_tls_verified_against_a_trusted_ca(
    serve: ServerFactory,
    self_signed: tuple[Path, ssl.SSLContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, context = self_signed
    # The system's store honours SSL_CERT_FILE: trust our certificate as a CA would be.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    port = await serve(echo, context)
    result = await check(port, tls=True, send="hi", expect="hi")
    assert result.status is Status.OK, result.message
    assert 29 <= result.fields["cert_expires_in_days"] <= 30

    connected = await check(port, tls=True)
    assert connected.status is Status.OK
    days = connected.fields["cert_expires_in_days"]
    assert (
        connected.message
        == f"connected to 127.0.0.1:{port} (TLS, certificate expires in {days:g} days)"
    )

    wrong_name = await check(port, tls=True, server_name="other.test")
    assert wrong_name.status is Status.ERROR
    assert wrong_name.message is not None
    assert "not trusted: Hostname mismatch" in wrong_name.message


async def test_tls_to_a_plain_port_says_so() -> None:
    async with running_service(EchoListener) as ready:
        result = await check(ready["port"], tls=True, verify_tls=False)
    assert result.status is Status.ERROR
    assert result.message is not None
    assert result.message.startswith(f"TLS handshake with 127.0.0.1:{ready['port']} failed: ")
    assert "(does this port speak TLS?)" in result.message


async def test_handshake_that_never_finishes_times_out(serve: ServerFactory) -> None:
    # Accepts and reads the ClientHello, never answers: the job's timeout is the clock.
    port = await serve(banner(b"", hold=True))
    result = await run_check(
        Tcp, {"host": "127.0.0.1", "port": port, "tls": True, "verify_tls": False}, timeout=0.5
    )
    assert result.status is Status.TIMEOUT


# ------------------------------------------------------------------ options


def test_escapes() -> None:
    assert decode_escapes("PING\\r\\n") == b"PING\r\n"
    assert decode_escapes("a\\tb\\0\\\\\\x7f") == b"a\tb\0\\\x7f"
    assert decode_escapes("caf\u00e9\n") == "caf\u00e9\n".encode()  # YAML's own escapes pass


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"send": "a\\qb"}, r"unknown escape \\q at character 2"),
        ({"send": "a\\"}, "a backslash at the end escapes nothing"),
        ({"expect": "("}, "not a valid regular expression"),
        ({"port": 0}, "greater than or equal to 1"),
        ({"server_name": "x.test"}, "server_name is only used with tls: true"),
        ({"verify_tls": False}, "verify_tls is only used with tls: true"),
    ],
)
def test_bad_options(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        TcpOptions.model_validate({"host": "127.0.0.1", "port": 7, **options})


# ------------------------------------------------------------------ in the daemon


def test_daemon_checks_its_own_echo_listener(write_config: WriteConfig) -> None:
    port = closed_port()
    path = write_config(
        f"""
        jobs:
          - name: echo
            plugin: echo-listener
            options: {{port: {port}}}
          - name: echo-answers
            plugin: tcp
            interval: 1h
            options:
              host: 127.0.0.1
              port: {port}
              send: 'PING\\r\\n'
              expect: '^PING\\r\\n$'
        """
    )
    runner = serve_until(path, event="job.finished", job="echo-answers")
    (finished,) = runner.find(event="job.finished", job="echo-answers")
    assert finished["status"] == "ok", finished
    assert finished["reply"] == "PING\r\n"
    assert finished["ip"] == "127.0.0.1"
    assert set(finished["timings_ms"]) == {"dns", "connect", "request", "ttfb", "transfer"}

"""One test per private name of a dependency the built-ins rely on (runner.builtins._compat).

Each fails naming the dependency, its version and what broke, so an upgrade
that removes or changes one is caught here, not by a check in production.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import dns.asyncresolver
import dns.nameserver
import dns.resolver
import h11
import httpcore
import httpx
import pytest

from runner.builtins import _compat
from runner.builtins.http.probe import Probe, ProbingTransport


def version(distribution: str) -> str:
    return f"{distribution} {importlib.metadata.version(distribution)}"


# ---------------------------------------------------------------- httpx


def test_httpx_builds_redirect_requests() -> None:
    client = httpx.AsyncClient()
    request = httpx.Request(
        "POST", "http://a.example/form", headers={"Authorization": "secret"}, content=b"x"
    )
    response = httpx.Response(303, headers={"Location": "http://b.example/done"}, request=request)
    try:
        redirect = _compat.build_redirect_request(client, request, response)
    except (AttributeError, RuntimeError, TypeError) as exc:
        pytest.fail(
            f"{version('httpx')}: AsyncClient._build_redirect_request(request, response) "
            f"is gone or changed ({exc!r}); http-status follows redirects with it. "
            "See runner/builtins/_compat.py."
        )
    problems = []
    if str(redirect.url) != "http://b.example/done":
        problems.append(f"URL {redirect.url}")
    if redirect.method != "GET":
        problems.append(f"method {redirect.method} after a 303")
    if "authorization" in redirect.headers:
        problems.append("Authorization kept across origins")
    assert not problems, (
        f"{version('httpx')}: _build_redirect_request applies other redirect rules: "
        f"{', '.join(problems)}"
    )


def test_httpx_invalid_location_is_a_remote_protocol_error() -> None:
    client = httpx.AsyncClient()
    request = httpx.Request("GET", "http://a.example/")
    response = httpx.Response(302, headers={"Location": "http://[::1/"}, request=request)
    with pytest.raises(httpx.RemoteProtocolError):
        _compat.build_redirect_request(client, request, response)


@pytest.mark.parametrize(
    "core, expected",
    [
        (httpcore.ConnectError, httpx.ConnectError),
        (httpcore.ConnectTimeout, httpx.ConnectTimeout),
        (httpcore.ReadError, httpx.ReadError),
        (httpcore.ReadTimeout, httpx.ReadTimeout),
        (httpcore.WriteError, httpx.WriteError),
        (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
        (httpcore.LocalProtocolError, httpx.LocalProtocolError),
        (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    ],
    ids=lambda kind: kind.__name__,
)
def test_httpcore_errors_are_raised_as_httpx_raises_them(
    core: type[Exception], expected: type[Exception]
) -> None:
    # http.probe maps them itself (httpx's mapping is private); it must agree with httpx's.
    from httpx._transports.default import map_httpcore_exceptions

    with pytest.raises(httpx.HTTPError) as theirs, map_httpcore_exceptions():
        raise core("boom")
    from runner.builtins.http.probe import _httpx_error

    ours = _httpx_error(core("boom"))
    assert type(theirs.value) is expected is type(ours), (
        f"{version('httpx')} raises {type(theirs.value).__name__} for httpcore's "
        f"{core.__name__}; runner.builtins.http.probe raises {type(ours).__name__}"
    )


# ---------------------------------------------------------------- httpcore and h11


def test_httpcore_header_limit() -> None:
    limit = _compat.MAX_HEADER_BYTES
    assert isinstance(limit, int) and limit > 0, (
        f"{version('httpcore')}: AsyncHTTP11Connection.MAX_INCOMPLETE_EVENT_SIZE is gone "
        f"({limit!r}); http-status names the response header limit with it"
    )


async def test_httpcore_connection_lock_is_left_out() -> None:
    """The one-request connection has no state lock, and still answers and closes."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        stream = _AsyncioStream(reader, writer)
        connection = _compat.http11_connection(httpcore.Origin(b"http", b"127.0.0.1", port), stream)
        lock = getattr(connection, "_state_lock", None)
        assert isinstance(lock, _compat._NoLock), (
            f"{version('httpcore')}: AsyncHTTP11Connection._state_lock is {lock!r}, not the "
            "AsyncLock runner.builtins._compat.http11_connection leaves out (each http-status "
            "request takes it twice through anyio)"
        )
        request = httpcore.Request("GET", f"http://127.0.0.1:{port}/", headers=[(b"Host", b"x")])
        response = await connection.handle_async_request(request)
        assert response.status == 200
        assert await response.aread() == b"ok"
        await response.aclose()
        assert connection.is_idle()
        await connection.aclose()
        assert connection.is_closed()


class _AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._reader.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._writer.write(buffer)
        await self._writer.drain()

    async def aclose(self) -> None:
        self._writer.close()


def test_h11_cut_chunked_body_text() -> None:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "a")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc")
    conn.receive_data(b"")
    with pytest.raises(h11.RemoteProtocolError) as raised:
        while True:
            conn.next_event()
    exc = httpx.RemoteProtocolError(str(raised.value))
    assert _compat.incomplete_chunked_read(exc), (
        f"{version('h11')}: the error for a chunked body cut inside a chunk reads "
        f"{str(raised.value)!r}, without {_compat._INCOMPLETE_CHUNKED!r}: http-status would "
        "call it bad chunked encoding"
    )


async def test_httpcore_trace_events_that_time_the_phases() -> None:
    seen: list[str] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    probe = Probe()

    async def trace(event: str, info: dict[str, Any]) -> None:
        seen.append(event)
        await probe.trace(event, info)

    async with (
        server,
        httpx.AsyncClient(transport=ProbingTransport(ssl.create_default_context())) as client,
    ):
        with probe.active():
            response = await client.get(f"http://127.0.0.1:{port}/", extensions={"trace": trace})
            await response.aread()
    wanted = {
        "http11.send_request_headers.started",
        "http11.send_request_body.complete",
        "http11.receive_response_headers.complete",
    }
    assert wanted <= set(seen), (
        f"{version('httpcore')}: the trace extension no longer sends {sorted(wanted - set(seen))}"
        f" (sent: {seen}); http-status times request and ttfb with them (http/probe.py)"
    )
    assert probe.phases["ttfb"] > 0


# ---------------------------------------------------------------- ssl


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "30", "-subj", "/CN=localhost"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_ssl_private_chain_says_its_dates(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=cert)
    pipes = [ssl.MemoryBIO() for _ in range(4)]
    client = client_context.wrap_bio(pipes[0], pipes[1], server_hostname="localhost")
    server = server_context.wrap_bio(pipes[2], pipes[3], server_side=True)
    for _ in range(10):  # a handshake in memory: hand the bytes across until both are done
        done = 0
        for side in (client, server):
            try:
                side.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
        pipes[2].write(pipes[1].read())
        pipes[0].write(pipes[3].read())
        if done == 2:
            break
    infos = _compat.verified_chain_info(client)

    assert infos and all("notAfter" in info for info in infos), (
        f"Python {sys.version.split()[0]}: ssl.SSLObject._sslobj.get_verified_chain() and "
        "Certificate.get_info() no longer give the chain's dates; the checks would report "
        "the leaf's expiry only (runner/builtins/_compat.py)"
    )


# ---------------------------------------------------------------- dnspython


async def test_dnspython_no_nameservers_carries_each_servers_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver("127.0.0.1", port)]
    # A TCP server that closes at once: UDP refused, then no answer over TCP either.
    with pytest.raises(dns.resolver.NoNameservers) as raised:
        await resolver.resolve("example.test.", "A", lifetime=5, tcp=True)
    errors = _compat.nameserver_errors(raised.value)
    assert errors and errors[0].address == "127.0.0.1" and errors[0].port == port, (
        f"{version('dnspython')}: NoNameservers no longer carries errors=[(nameserver, tcp, "
        f"port, exception, answer)] with the server as 'Do53:IP@PORT' "
        f"(got {raised.value.kwargs.get('errors')!r}); the dns check names each server "
        "with them"
    )


# ---------------------------------------------------------------- playwright


def test_playwright_cache_layout_matches_its_public_executable_path() -> None:
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    ours = _compat.playwright_browser_paths().get("chromium")
    with sync_playwright() as playwright:
        theirs = playwright.chromium.executable_path
    assert ours is not None and str(ours) == theirs, (
        f"{version('playwright')}: its Chromium is at {theirs}, but browsers.json and the "
        f"cache layout runner reads say {ours}; find_chromium would miss Playwright's "
        "own Chromium (runner/builtins/_compat.py)"
    )

"""A hostile HTTP server for tests: a real asyncio server on 127.0.0.1 that breaks HTTP on purpose.

Every answer is written byte by byte, so it can be as wrong as a real
server gets: a body cut by a reset, shorter than its Content-Length, bad or
unfinished chunks, a body that trickles, a 5 GB body or a gzip bomb that
are generated as they are sent (never stored), an HTTP/0.9 reply, an
invalid status line, broken redirects, 200 KiB of headers. Paths are listed
in :data:`PATHS`; query parameters tune some of them (``delay``, ``to``).

With ``ssl_context`` the server speaks TLS and keeps the SNI names clients
asked for. :class:`SlowTlsServer` holds the TLS handshake back.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "FIVE_GB",
    "JSON_BODY",
    "PATHS",
    "HostileServer",
    "Request",
    "SlowTlsServer",
    "read_request_head",
]

#: The size of the /huge body, and the decoded size of the /gzip-bomb body.
FIVE_GB = 5 * 1000**3

#: What /json answers.
JSON_BODY = {
    "status": "UP",
    "version": "2.1.0",
    "latency_ms": 42,
    "tags": ["prod", "eu"],
    "checks": [{"name": "db", "ok": True}],
    "nothing": None,
}

_BLOCK = b"x" * 65536
_MIB = 1024 * 1024


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


Handler = Callable[["HostileServer", Request, asyncio.StreamWriter], Awaitable[None]]


def _head(status: str, *headers: str) -> bytes:
    return ("\r\n".join([f"HTTP/1.1 {status}", *headers]) + "\r\n\r\n").encode("latin-1")


def _answer(
    writer: asyncio.StreamWriter, body: bytes, *headers: str, status: str = "200 OK"
) -> None:
    writer.write(_head(status, *headers, f"Content-Length: {len(body)}") + body)


async def _ok(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    _answer(writer, b"ok", "Content-Type: text/plain")


async def _page(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    body = b"<html><title>Welcome</title><body>All systems operational</body></html>"
    _answer(writer, body, "Content-Type: text/html; charset=utf-8")


async def _json(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    _answer(writer, json.dumps(JSON_BODY).encode(), "Content-Type: application/json")


async def _host(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    _answer(writer, f"host={request.headers.get('host')}".encode(), "Content-Type: text/plain")


async def _headers(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    _answer(
        writer,
        b"{}",
        "Content-Type: application/json; charset=utf-8",
        "X-Ready: yes",
        "Set-Cookie: session=cookie-secret-value; Path=/",
    )


async def _gzip(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    compress = zlib.compressobj(wbits=31)
    body = compress.compress(b"hello from a gzip body " * 100) + compress.flush()
    _answer(writer, body, "Content-Encoding: gzip", "Content-Type: text/plain")


async def _deflate(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """Raw deflate (no zlib wrapper), as some servers send ``deflate``."""
    compress = zlib.compressobj(wbits=-15)
    body = compress.compress(b"hello from a raw deflate body") + compress.flush()
    _answer(writer, body, "Content-Encoding: deflate")


async def _brotli(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    _answer(writer, b"\x8b\x02\x80hello\x03", "Content-Encoding: br")


async def _bad_gzip(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    _answer(writer, b"this is not gzip at all", "Content-Encoding: gzip")


async def _reset(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(_head("200 OK", "Content-Length: 100000") + b"x" * 1000)
    await writer.drain()
    await asyncio.sleep(0.05)  # let the client take in the first bytes
    sock = writer.get_extra_info("socket")
    # SO_LINGER with a zero timeout: close() sends a RST, not a FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _short(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(_head("200 OK", "Content-Length: 1000") + b"x" * 100)
    await writer.drain()
    writer.close()


async def _bad_chunk(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(_head("200 OK", "Transfer-Encoding: chunked") + b"5\r\nhello\r\nzz\r\nabc\r\n")
    await writer.drain()
    writer.close()


async def _truncated_chunk(
    server: HostileServer, request: Request, writer: asyncio.StreamWriter
) -> None:
    writer.write(_head("200 OK", "Transfer-Encoding: chunked") + b"1000\r\n" + b"x" * 10)
    await writer.drain()
    writer.close()


async def _trickle(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """100 bytes at 1 byte a second."""
    writer.write(_head("200 OK", "Content-Length: 100"))
    for _ in range(100):
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(1)


async def _huge(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """5 GB, made as it is sent; ``server.sent`` counts what left."""
    writer.write(_head("200 OK", f"Content-Length: {FIVE_GB}"))
    for _ in range(FIVE_GB // len(_BLOCK)):
        writer.write(_BLOCK)
        server.sent += len(_BLOCK)
        await writer.drain()


async def _gzip_bomb(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """A gzip body that inflates to 5 GB: the same deflate block of 1 MiB of zeros, repeated.

    After a full flush a deflate block refers to nothing before it, so
    repeating it is valid deflate; the stream is never finished (the client
    must stop first).
    """
    compress = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = compress.compress(b"\0" * _MIB) + compress.flush(zlib.Z_FULL_FLUSH)
    block = compress.compress(b"\0" * _MIB) + compress.flush(zlib.Z_FULL_FLUSH)
    writer.write(_head("200 OK", "Content-Encoding: gzip", "Connection: close") + first)
    server.sent += len(first)
    for _ in range(FIVE_GB // _MIB):
        writer.write(block)
        server.sent += len(block)
        await writer.drain()


async def _tls_alert(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    # What a TLS server sends a client that spoke plain HTTP to it: an alert record.
    writer.write(b"\x15\x03\x01\x00\x02\x02\x46")
    await writer.drain()
    writer.close()


async def _http09(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(b"hello world\n")  # a body with no status line, as HTTP/0.9 answered
    await writer.drain()
    writer.close()


async def _bad_status(
    server: HostileServer, request: Request, writer: asyncio.StreamWriter
) -> None:
    writer.write(b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n")


async def _no_location(
    server: HostileServer, request: Request, writer: asyncio.StreamWriter
) -> None:
    _answer(writer, b"", status="302 Found")


async def _bad_location(
    server: HostileServer, request: Request, writer: asyncio.StreamWriter
) -> None:
    _answer(writer, b"", "Location: http://[::1/next", status="302 Found")


async def _redirect(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """302 to the ``to`` parameter."""
    _answer(writer, b"", f"Location: {request.query['to']}", status="302 Found")


async def _big_headers(
    server: HostileServer, request: Request, writer: asyncio.StreamWriter
) -> None:
    headers = [f"X-Filler-{i}: {'a' * 1000}" for i in range(200)]  # 200 KiB
    _answer(writer, b"ok", *headers)


async def _slow(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """Waits ``delay`` seconds before answering; redirects to ``to`` if given."""
    await asyncio.sleep(float(request.query.get("delay", "0.3")))
    if "to" in request.query:
        await _redirect(server, request, writer)
    else:
        _answer(writer, b"finally")


#: path -> what the server does there.
PATHS: dict[str, Handler] = {
    "/ok": _ok,
    "/page": _page,
    "/json": _json,
    "/host": _host,
    "/headers": _headers,
    "/gzip": _gzip,
    "/bad-gzip": _bad_gzip,
    "/brotli": _brotli,
    "/deflate": _deflate,
    "/reset": _reset,
    "/short": _short,
    "/bad-chunk": _bad_chunk,
    "/truncated-chunk": _truncated_chunk,
    "/trickle": _trickle,
    "/huge": _huge,
    "/gzip-bomb": _gzip_bomb,
    "/http09": _http09,
    "/tls-alert": _tls_alert,
    "/bad-status": _bad_status,
    "/no-location": _no_location,
    "/bad-location": _bad_location,
    "/redirect": _redirect,
    "/big-headers": _big_headers,
    "/slow": _slow,
}


@dataclass
class HostileServer:
    """The server; ``await start()``, then ``url(path)``; ``await stop()`` ends every answer."""

    ssl_context: ssl.SSLContext | None = None
    host: str = "127.0.0.1"
    #: Body bytes written by the generated bodies (/huge, /gzip-bomb).
    sent: int = 0
    #: SNI names clients sent, in order.
    server_names: list[str | None] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str, host: str | None = None) -> str:
        scheme = "https" if self.ssl_context else "http"
        name = host or self.host
        if ":" in name:
            name = f"[{name}]"
        return f"{scheme}://{name}:{self.port}{path}"

    async def start(self) -> None:
        if self.ssl_context is not None:
            self.ssl_context.sni_callback = self._record_sni
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.ssl_context)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def _record_sni(self, _: ssl.SSLObject, name: str | None, __: ssl.SSLContext) -> None:
        self.server_names.append(name)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            request = await self._read_request(reader)
            if request is None:
                return
            self.requests.append(request)
            handler = PATHS.get(request.path)
            if handler is None:
                _answer(writer, b"no such path", status="404 Not Found")
            else:
                await handler(self, request, writer)
            await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass  # the client hung up, as it should once it has read enough
        except asyncio.CancelledError:
            # stop() ends answers still going (/trickle). Not re-raised: on
            # Python 3.11 start_server's done-callback logs a cancelled
            # handler as an error.
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> Request | None:
        head = await read_request_head(reader)
        if head is None:
            return None
        method, target, headers = head
        parts = urlsplit(target)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        return Request(method, parts.path, query, headers)


async def read_request_head(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str]] | None:
    """The method, target and headers (names in lower case) of the next
    request on ``reader``; None when the client closed instead."""
    line = await reader.readline()
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers = {}
    while (header := await reader.readline()) not in (b"\r\n", b""):
        name, value = header.decode("latin-1").split(":", 1)
        headers[name.strip().lower()] = value.strip()
    return method, target, headers


class SlowTlsServer:
    """A TLS server that waits ``delay`` seconds after accepting before its handshake.

    A blocking server in a thread: an asyncio server reads the ClientHello
    into its stream buffer before a delayed ``start_tls`` could see it. It
    answers every request with ``200 ok``. Use it as a context manager.
    """

    def __init__(self, ssl_context: ssl.SSLContext, delay: float) -> None:
        self._context = ssl_context
        self._delay = delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="slow-tls", daemon=True)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self._listener.getsockname()[1]}{path}"

    def __enter__(self) -> SlowTlsServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                time.sleep(self._delay)
                try:
                    with self._context.wrap_socket(conn, server_side=True) as tls:
                        data = b""
                        while b"\r\n\r\n" not in data and (more := tls.recv(4096)):
                            data += more
                        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                except (OSError, ssl.SSLError):
                    pass

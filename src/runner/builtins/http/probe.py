"""What one ``http-status`` run saw on the wire: time per phase, the address, the certificate.

httpcore resolves and connects inside its connection pool, where a check can
see neither how long the name lookup took nor which address answered. So the
shared client's transport has no pool: :class:`FreshConnections` resolves the
name itself (``dns``), connects to the address it picked (``connect``),
starts TLS with the shared context (``tls``) and speaks HTTP/1.1 on
httpcore's own connection class; httpcore's ``trace`` request extension
times ``request`` and ``ttfb``, and the body reader closes the last phase
(``transfer``). The URL is never rewritten to the address, so the Host
header, SNI and certificate name checks all see the name from the URL.

It is also what makes a check cheap: every run dials anyway (no keep-alive,
on purpose), so httpcore's pool would only queue, scan and lock, and its
anyio backend spends more CPU on cancel scopes than the exchange itself; the
connection here is asyncio's own streams (bench/http_status.py).

:class:`FreshConnections` finds the run it works for through a context
variable: it dials in the task that sends the request, so each run's
:class:`Probe` is the one that task set (:meth:`Probe.active`). Requests of
other code on the same transport (none today) are dialled without timings.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import math
import socket
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

import httpcore
import httpx

from runner.builtins._compat import http11_connection
from runner.builtins._tls import earliest_expiry

__all__ = [
    "HEAD_BYTES",
    "PHASES",
    "IpVersion",
    "Probe",
    "ProbingTransport",
]

#: The phases of a request, in order, as blackbox_exporter and curl's ``-w`` name them.
PHASES = ("dns", "connect", "tls", "request", "ttfb", "transfer")

#: How many of the first bytes of an answer are kept to explain a reply that is not HTTP.
HEAD_BYTES = 256

IpVersion = Literal[4, 6, "any"]

_FAMILIES: dict[IpVersion, socket.AddressFamily] = {
    4: socket.AF_INET,
    6: socket.AF_INET6,
    "any": socket.AF_UNSPEC,
}

_current: ContextVar[Probe | None] = ContextVar("runner_http_probe", default=None)


class Probe:
    """The timings and facts of one run, added up over its redirect hops.

    Attributes:
        phases: seconds spent in each of :data:`PHASES`, summed over hops.
        ip: the address of the last connection made (or tried).
        head: the first bytes the server sent on the current hop.
        received: how many bytes the server sent on the current hop.
        cert_expiry: the earliest ``notAfter`` (epoch seconds) seen on any hop.
        unresolved: the host name that did not resolve, if one did not.
    """

    def __init__(self, ip_version: IpVersion = "any") -> None:
        self.ip_version: IpVersion = ip_version
        self.phases = dict.fromkeys(PHASES, 0.0)
        self.ip: str | None = None
        self.head = bytearray()
        self.received = 0
        self.cert_expiry: float | None = None
        #: The host name that did not resolve, if one did not.
        self.unresolved: str | None = None
        self._mark = 0.0  # when the phase under way started
        self._headers_at: float | None = None

    @contextmanager
    def active(self) -> Iterator[Probe]:
        """Make this the probe the backend reports to, for the current task."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    def new_hop(self) -> None:
        """Forget the previous hop's answer; its timings stay in the totals."""
        self.head.clear()
        self.received = 0
        self._headers_at = None

    def end_transfer(self) -> None:
        """The body of the current hop is read (or dropped): close the ``transfer`` phase."""
        if self._headers_at is not None:
            self.phases["transfer"] += time.perf_counter() - self._headers_at
            self._headers_at = None

    def seen_certificate(self, ssl_object: ssl.SSLObject | None) -> None:
        """Take the earliest expiry of this hop's certificate chain into account."""
        expiry = earliest_expiry(ssl_object)
        if expiry is not None and (self.cert_expiry is None or expiry < self.cert_expiry):
            self.cert_expiry = expiry

    def total(self) -> float:
        """Seconds spent in all phases of all hops."""
        return sum(self.phases.values())

    def timings_ms(self) -> dict[str, float]:
        """The phases in milliseconds, rounded down, so they never add up past the run."""
        return {name: math.floor(value * 1e6) / 1e3 for name, value in self.phases.items()}

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's ``trace`` extension: called as each step starts and ends."""
        now = time.perf_counter()
        phases = self.phases
        if event in ("connection.start_tls.started", "http11.send_request_headers.started"):
            self._mark = now
        elif event == "http11.send_request_body.complete":
            phases["request"] += now - self._mark
            self._mark = now  # from here on the client waits for the answer
        elif event == "http11.receive_response_headers.complete":
            phases["ttfb"] += now - self._mark
            self._headers_at = now
        elif event in ("connection.start_tls.complete", "connection.start_tls.failed"):
            phases["tls"] += now - self._mark
        elif event in ("http11.send_request_headers.failed", "http11.send_request_body.failed"):
            phases["request"] += now - self._mark
        elif event == "http11.receive_response_headers.failed":
            phases["ttfb"] += now - self._mark

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to try for ``host``, in the resolver's order, for ``ip_version``."""
        family = _FAMILIES[self.ip_version]
        literal = _address_literal(host)
        if literal is not None:
            literal_version, address = literal
            if family != socket.AF_UNSPEC and literal_version != self.ip_version:
                raise httpcore.ConnectError(
                    f"{host} is an IPv{literal_version} address, but ip_version is "
                    f"{self.ip_version}"
                )
            return [address]
        started = time.perf_counter()
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, family=family, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            self.unresolved = host
            reason = exc.strerror or str(exc)
            if family != socket.AF_UNSPEC:
                version = self.ip_version
                reason = f"no IPv{version} address ({reason}; ip_version is {version})"
            raise httpcore.ConnectError(reason) from socket.gaierror(exc.errno, reason)
        finally:
            self.phases["dns"] += time.perf_counter() - started
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


@functools.lru_cache(maxsize=1024)
def _address_literal(host: str) -> tuple[int, str] | None:
    """``host``'s IP version and its address written short, when it is an IP
    address; None for a name. Cached: a daemon asks for the same few hosts
    every run, and ``ipaddress`` parses in Python."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return None
    return literal.version, literal.compressed


class _Stream(httpcore.AsyncNetworkStream):
    """A connection on asyncio's own streams, keeping the first bytes it receives.

    httpcore's default backend goes through anyio, whose cancel scopes and
    task-group machinery cost more CPU per check than the whole HTTP exchange
    (bench/http_status.py). The errors are httpcore's, raised from the
    ``OSError`` or ``ssl.SSLError`` under them, as its anyio backend raises
    them, so a failed run names the same cause.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        probe: Probe | None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._probe = probe

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            if timeout is None:  # http-status's client sets none: the job's timeout is the clock
                data = await self._reader.read(max_bytes)
            else:
                async with asyncio.timeout(timeout):
                    data = await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(exc) from exc
        except (OSError, ssl.SSLError) as exc:  # ssl.SSLError is an OSError; said for clarity
            raise httpcore.ReadError(exc) from exc
        probe = self._probe
        if probe is not None:
            probe.received += len(data)
            if len(probe.head) < HEAD_BYTES:
                probe.head += data[: HEAD_BYTES - len(probe.head)]
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            if timeout is None:
                self._writer.write(buffer)
                await self._writer.drain()
            else:
                async with asyncio.timeout(timeout):
                    self._writer.write(buffer)
                    await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.WriteError(exc) from exc

    async def aclose(self) -> None:
        # No TLS close_notify exchange (as httpcore's anyio backend, which
        # wraps TLS with standard_compatible=False): a check is done with the
        # connection once its answer is in, and a server that never answers
        # the close would keep the transport for asyncio's shutdown timeout.
        if self._writer.get_extra_info("ssl_object") is not None:
            self._writer.transport.abort()
        else:
            self._writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                # asyncio's own 60 s handshake limit is not ours to impose:
                # the job's timeout is the only clock.
                await self._writer.start_tls(
                    ssl_context, server_hostname=server_hostname, ssl_handshake_timeout=_FOREVER
                )
        except TimeoutError as exc:
            self._writer.transport.abort()
            raise httpcore.ConnectTimeout(exc) from exc
        except (OSError, EOFError) as exc:
            self._writer.transport.abort()
            raise httpcore.ConnectError(exc) from exc
        except BaseException:
            self._writer.transport.abort()
            raise
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info in ("ssl_object", "socket"):
            return self._writer.get_extra_info(info)
        return None


#: asyncio wants a number for its TLS handshake limit; a day is none in practice.
_FOREVER = 86400.0


async def _connect(host: str, port: int, probe: Probe | None) -> _Stream:
    """A TCP connection to ``host`` (an address, when a probe resolved it)."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        raise httpcore.ConnectError(exc) from exc
    return _Stream(reader, writer, probe)


async def _dial(host: str, port: int) -> _Stream:
    """Resolve ``host`` for the run's probe and connect, timing both."""
    probe = _current.get()
    if probe is None:
        return await _connect(host, port, None)
    addresses = await probe.resolve(host, port)
    started = time.perf_counter()
    try:
        # In the resolver's order (RFC 6724 as configured in gai.conf), one
        # at a time: the check reports the address that answered.
        for index, address in enumerate(addresses):
            probe.ip = address
            try:
                return await _connect(address, port, probe)
            except httpcore.ConnectError:
                if index == len(addresses) - 1:
                    raise
        raise httpcore.ConnectError(f"{host} has no address")  # getaddrinfo never does this
    finally:
        probe.phases["connect"] += time.perf_counter() - started


class _ClosingStream:
    """A response body whose close closes its connection: none is kept alive."""

    def __init__(
        self, stream: AsyncIterable[bytes], connection: httpcore.AsyncHTTP11Connection
    ) -> None:
        self._stream = stream
        self._connection = connection

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            if hasattr(self._stream, "aclose"):
                await self._stream.aclose()
        finally:
            await self._connection.aclose()


class FreshConnections(httpcore.AsyncConnectionInterface):
    """httpcore's pool for a client that never reuses a connection, without the pool.

    Every request dials (through the run's :class:`Probe`), starts TLS with
    the shared context, speaks HTTP/1.1 on httpcore's own connection class,
    and closes the connection with the response. httpcore's pool would do the
    same with ``max_keepalive_connections=0``, after queueing each request,
    scanning its connections and taking its locks on every request and close.
    """

    def __init__(self, ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext]) -> None:
        self._ssl_context: ssl.SSLContext | None = None
        self._new_ssl_context: Callable[[], ssl.SSLContext] | None = None
        if isinstance(ssl_context, ssl.SSLContext):
            self._ssl_context = _for_http11(ssl_context)
        else:
            self._new_ssl_context = ssl_context

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of every https connection, built on first use when
        given as a function: loading the system's CA store costs about as much
        CPU as 50 plain-http checks, and a daemon with no https job needs none."""
        if self._ssl_context is None:
            assert self._new_ssl_context is not None
            self._ssl_context = _for_http11(self._new_ssl_context())
        return self._ssl_context

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        url = request.url
        scheme = url.scheme.decode()
        if scheme == "":
            raise httpcore.UnsupportedProtocol(
                "Request URL is missing an 'http://' or 'https://' protocol."
            )
        if scheme not in ("http", "https"):
            raise httpcore.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{scheme}://'."
            )
        host = url.host.decode("ascii")
        port = url.port or (443 if scheme == "https" else 80)
        stream: httpcore.AsyncNetworkStream = await _dial(host, port)
        if scheme == "https":
            probe = _current.get()
            started = time.perf_counter()
            try:
                sni = request.extensions.get("sni_hostname") or host
                stream = await stream.start_tls(self.ssl_context(), server_hostname=sni)
            finally:
                if probe is not None:
                    probe.phases["tls"] += time.perf_counter() - started
        connection = http11_connection(httpcore.Origin(url.scheme, url.host, port), stream)
        try:
            response = await connection.handle_async_request(request)
        except BaseException:
            await connection.aclose()
            raise
        assert isinstance(response.stream, AsyncIterable)
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=_ClosingStream(response.stream, connection),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        pass  # nothing is kept open between requests

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return True

    def is_available(self) -> bool:
        return True

    def has_expired(self) -> bool:
        return False

    def is_idle(self) -> bool:
        return True

    def is_closed(self) -> bool:
        return False

    async def __aenter__(self) -> FreshConnections:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _for_http11(context: ssl.SSLContext) -> ssl.SSLContext:
    context.set_alpn_protocols(["http/1.1"])  # as httpcore sets it per connection
    return context


class ProbingTransport(httpx.AsyncBaseTransport):
    """An httpx transport on :class:`FreshConnections`: no pool, a fresh connection per request.

    What ``httpx.AsyncHTTPTransport`` does around its pool, on httpx's public
    transport API: the request handed to httpcore, httpcore's errors raised
    as httpx's (the same mapping), the answer's body streamed. No connection
    is kept alive and the number open is not capped: every run dials, and a
    queued run would be timed as a slow target (the scheduler bounds
    concurrency).
    """

    def __init__(self, ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext]) -> None:
        """``ssl_context``: the context of every https connection, or a function
        that builds it on the first one."""
        self._connections = FreshConnections(ssl_context)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,  # an async stream: an async client sent it
            extensions=request.extensions,
        )
        try:
            response = await self._connections.handle_async_request(core_request)
        except _HTTPCORE_ERRORS as exc:
            raise _httpx_error(exc) from exc
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._connections.aclose()


class _ResponseStream(httpx.AsyncByteStream):
    """An answer's body for httpx, with httpcore's errors raised as httpx's."""

    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except _HTTPCORE_ERRORS as exc:
            raise _httpx_error(exc) from exc

    async def aclose(self) -> None:
        if hasattr(self._stream, "aclose"):
            await self._stream.aclose()


#: httpcore's errors and the httpx errors they are raised as (httpx's own mapping).
_HTTPX_ERRORS: dict[type[Exception], type[httpx.HTTPError]] = {
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
}


_HTTPCORE_ERRORS = tuple(_HTTPX_ERRORS)


def _httpx_error(exc: Exception) -> httpx.HTTPError:
    """httpcore's ``exc`` as the httpx error ``httpx.AsyncHTTPTransport`` raises for it."""
    for kind in type(exc).__mro__:
        mapped = _HTTPX_ERRORS.get(kind)
        if mapped is not None:
            return mapped(str(exc))
    return httpx.TransportError(str(exc))

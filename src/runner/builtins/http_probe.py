"""What one ``http-status`` run saw on the wire: time per phase, the address, the certificate.

httpcore resolves and connects inside its connection pool, where a check can
see neither how long the name lookup took nor which address answered. So the
shared client's pool gets a network backend of ours (:class:`ProbingBackend`)
that resolves the name itself (``dns``), then connects to the address it
picked (``connect``); the later phases come from httpcore's ``trace`` request
extension (``tls``, ``request``, ``ttfb``), and the body reader closes the
last one (``transfer``). The URL is never rewritten to the address, so the
Host header, SNI and certificate name checks all see the name from the URL.

The backend finds the run it works for through a context variable: httpcore
dials in the task that sends the request, so each run's :class:`Probe` is
the one that task set (:meth:`Probe.active`). Requests of other code on the
same pool (none today) would be dialled as httpcore does it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

import httpcore
import httpx

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

SOCKET_OPTION = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class Probe:
    """The timings and facts of one run, added up over its redirect hops.

    Attributes:
        phases: seconds spent in each of :data:`PHASES`, summed over hops.
        ip: the address of the last connection made (or tried).
        head: the first bytes the server sent on the current hop.
        response_head: ``(status, headers)`` of the current hop once they are in.
        cert_expiry: the earliest ``notAfter`` (epoch seconds) seen on any hop.
    """

    def __init__(self, ip_version: IpVersion = "any") -> None:
        self.ip_version: IpVersion = ip_version
        self.phases = dict.fromkeys(PHASES, 0.0)
        self.ip: str | None = None
        self.head = bytearray()
        self.response_head: tuple[int, list[tuple[bytes, bytes]]] | None = None
        self.cert_expiry: float | None = None
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
        self.response_head = None
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
            _, status, _, headers = info["return_value"]
            self.response_head = (status, headers)
        elif event in ("connection.start_tls.complete", "connection.start_tls.failed"):
            phases["tls"] += now - self._mark
        elif event in ("http11.send_request_headers.failed", "http11.send_request_body.failed"):
            phases["request"] += now - self._mark
        elif event == "http11.receive_response_headers.failed":
            phases["ttfb"] += now - self._mark

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to try for ``host``, in the resolver's order, for ``ip_version``."""
        family = _FAMILIES[self.ip_version]
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            if family != socket.AF_UNSPEC and literal.version != self.ip_version:
                raise httpcore.ConnectError(
                    f"{host} is an IPv{literal.version} address, but ip_version is "
                    f"{self.ip_version}"
                )
            return [literal.compressed]
        started = time.perf_counter()
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, family=family, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            reason = exc.strerror or str(exc)
            if family != socket.AF_UNSPEC:
                version = self.ip_version
                reason = f"no IPv{version} address ({reason}; ip_version is {version})"
            raise httpcore.ConnectError(reason) from socket.gaierror(exc.errno, reason)
        finally:
            self.phases["dns"] += time.perf_counter() - started
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _RecordingStream(httpcore.AsyncNetworkStream):
    """A connection that keeps the first bytes it receives, to explain a garbled answer."""

    def __init__(self, stream: httpcore.AsyncNetworkStream, probe: Probe) -> None:
        self._stream = stream
        self._probe = probe

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self._stream.read(max_bytes, timeout)
        head = self._probe.head
        if len(head) < HEAD_BYTES:
            head += data[: HEAD_BYTES - len(head)]
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        tls = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        return _RecordingStream(tls, self._probe)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class ProbingBackend(httpcore.AnyIOBackend):
    """httpcore's asyncio backend, resolving names itself for the run's :class:`Probe`."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        probe = _current.get()
        if probe is None:
            return await super().connect_tcp(host, port, timeout, local_address, socket_options)
        addresses = await probe.resolve(host, port)
        started = time.perf_counter()
        try:
            # In the resolver's order (RFC 6724 as configured in gai.conf), one
            # at a time: the check reports the address that answered.
            for index, address in enumerate(addresses):
                probe.ip = address
                try:
                    stream = await super().connect_tcp(
                        address, port, timeout, local_address, socket_options
                    )
                except httpcore.ConnectError:
                    if index == len(addresses) - 1:
                        raise
                else:
                    return _RecordingStream(stream, probe)
            raise httpcore.ConnectError(f"{host} has no address")  # getaddrinfo never does this
        finally:
            probe.phases["connect"] += time.perf_counter() - started


class ProbingTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a connection pool that dials with :class:`ProbingBackend`.

    No connection is kept alive and the number open is not capped: every
    run dials, and a queued run would be timed as a slow target (the
    scheduler bounds concurrency).
    """

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx takes no network backend, so its pool is replaced by an
        # identical one that has ours. ``_pool`` has been the attribute's name
        # since httpx 0.18; fail loudly at start-up if that ever changes.
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("this httpx version has no AsyncHTTPTransport._pool to replace")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=None,
            max_keepalive_connections=0,
            network_backend=ProbingBackend(),
        )

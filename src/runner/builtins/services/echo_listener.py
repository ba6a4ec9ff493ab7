"""The ``echo-listener`` service: a TCP server that sends back whatever it receives.

Written with asyncio protocols rather than streams for speed, with flow
control so that a client which sends without reading cannot grow the
daemon's memory: once a connection's unsent echo passes the write buffer's
high-water mark, reading from that connection pauses until the client has
taken enough of it. The kernel's socket buffers then fill and the client's
sends block.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import structlog
from pydantic import Field

from runner.builtins._net import format_address
from runner.builtins.services._listen import effective_backlog, listen_backlog, listen_error
from runner.durations import MAX_DURATION
from runner.plugin import Options, Service, ServiceContext

#: Unsent echo per connection above which reading from it pauses, and below
#: which it resumes. asyncio reads at most 256 KiB at a time, so one
#: connection holds at most about high + 256 KiB in the daemon.
WRITE_BUFFER_HIGH = 256 * 1024
WRITE_BUFFER_LOW = 64 * 1024

#: How long shutdown waits for closed connections to be released.
_SHUTDOWN_GRACE = 5.0


class EchoListenerOptions(Options):
    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description=(
            "Address to listen on. The default is loopback only; use 0.0.0.0 or :: "
            "to listen on all interfaces."
        ),
    )
    port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="TCP port to listen on; 0 picks a free one (reported as `port` when ready).",
    )
    max_connections: int = Field(
        default=100,
        ge=1,
        description=(
            "Connections served at once. Beyond it a new connection is closed at once "
            "and a listener.rejected event is logged. It also sizes the listen backlog, "
            "the connections the kernel queues until the daemon accepts them: "
            "max(100, max_connections), capped by the kernel at net.core.somaxconn."
        ),
    )
    idle_timeout: float = Field(
        default=300.0,
        gt=0,
        allow_inf_nan=False,
        le=MAX_DURATION,
        description=(
            "Seconds without receiving any data after which a connection is closed. "
            "A client that stops reading its echo also stops being read from, so it "
            "is closed after the same time."
        ),
    )


class EchoListener(Service[EchoListenerOptions]):
    """Listens on a TCP port and echoes back what each client sends."""

    Options = EchoListenerOptions

    async def serve(self, ctx: ServiceContext) -> None:
        """Listen until cancelled; on the way out close the server and every connection.

        Raises:
            OSError: the address cannot be listened on (port taken, no
                permission, unknown host); the message names the address.
        """
        opts = self.options
        loop = asyncio.get_running_loop()
        listener = _Listener(opts, ctx.log, loop)
        # A burst of max_connections connects waits in the kernel's queue
        # rather than overflowing it (see listen_backlog).
        backlog = listen_backlog(opts.max_connections)
        try:
            server = await loop.create_server(
                lambda: _EchoProtocol(listener), opts.host, opts.port, backlog=backlog
            )
        except OSError as exc:
            raise listen_error(opts.host, opts.port, exc) from exc
        port: int = opts.port
        try:
            sockets = server.sockets
            port = sockets[0].getsockname()[1]
            extra: dict[str, Any] = {}
            if len(sockets) > 1:
                # A host name with several addresses gets one socket each, and
                # with port 0 each socket has its own port.
                extra["addresses"] = [format_address(*s.getsockname()[:2]) for s in sockets]
            ctx.ready(host=opts.host, port=port, **extra)
            ctx.log.info(
                "listener.started",
                host=opts.host,
                port=port,
                max_connections=opts.max_connections,
                idle_timeout=opts.idle_timeout,
                backlog=effective_backlog(backlog),
                **extra,
            )
            await loop.create_future()  # until cancelled
        finally:
            listener.closing = True
            server.close()
            open_at_stop = len(listener.open)
            listener.close_all()
            await server.wait_closed()
            await listener.wait_released()
            ctx.log.info(
                "listener.stopped",
                host=opts.host,
                port=port,
                connections_served=listener.served,
                connections_rejected=listener.rejected,
                connections_idle_closed=listener.idle_closed,
                connections_open_at_stop=open_at_stop,
                bytes_received=listener.bytes_received,
            )


class _Listener:
    """What the connections of one listener share: options, log, counters."""

    def __init__(
        self,
        options: EchoListenerOptions,
        log: structlog.typing.FilteringBoundLogger,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.options = options
        self.log = log
        self.loop = loop
        self.open: set[_EchoProtocol] = set()
        self.served = 0
        self.rejected = 0
        self.idle_closed = 0
        self.bytes_received = 0
        self.closing = False
        self._released = asyncio.Event()

    def close_all(self) -> None:
        """Close every open connection (stopping)."""
        for conn in list(self.open):
            conn.close("shutdown")
        if not self.open:
            self._released.set()

    def forget(self, conn: _EchoProtocol) -> None:
        """Drop a connection that has gone."""
        self.open.discard(conn)
        self.bytes_received += conn.received
        if self.closing and not self.open:
            self._released.set()

    async def wait_released(self) -> None:
        """Wait, with a bound, until every closed connection has released its socket."""
        try:
            async with asyncio.timeout(_SHUTDOWN_GRACE):
                await self._released.wait()
        except TimeoutError:
            self.log.warning("listener.connections_not_released", open=len(self.open))


class _EchoProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, listener: _Listener) -> None:
        self._listener = listener
        self._transport: asyncio.Transport | None = None
        self._peer: str | None = None
        self._last_received = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._close_reason = "peer"
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        lst = self._listener
        peer = transport.get_extra_info("peername")
        self._peer = format_address(*peer[:2]) if peer else None
        if lst.closing or len(lst.open) >= lst.options.max_connections:
            # Closing a connection we have not read from sends a reset if the
            # client already sent data; either way the client sees it closed.
            transport.close()
            lst.rejected += 1
            if not lst.closing:
                lst.log.warning(
                    "listener.rejected",
                    peer=self._peer,
                    max_connections=lst.options.max_connections,
                    rejected_total=lst.rejected,
                )
            return
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH, low=WRITE_BUFFER_LOW)
        lst.open.add(self)
        lst.served += 1
        self._last_received = lst.loop.time()
        self._idle_timer = lst.loop.call_at(
            self._last_received + lst.options.idle_timeout, self._check_idle
        )
        lst.log.debug("listener.connection_opened", peer=self._peer, open=len(lst.open))

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            return
        # The idle timer reads this when it fires instead of being re-armed
        # here for every chunk.
        self._last_received = self._listener.loop.time()
        self.received += len(data)
        self._transport.write(data)

    def eof_received(self) -> bool:
        # Returning False lets the transport close once the echo is flushed.
        return False

    def pause_writing(self) -> None:
        # The client is not reading its echo fast enough: stop reading what
        # it sends, so the kernel buffers fill and its sends block.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return  # rejected
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        lst = self._listener
        lst.forget(self)
        lst.log.debug(
            "listener.connection_closed",
            peer=self._peer,
            reason=self._close_reason if exc is None else f"error: {exc}",
            bytes_received=self.received,
            open=len(lst.open),
        )

    def close(self, reason: str) -> None:
        """Close this connection from our side."""
        transport = self._transport
        if transport is None:
            return
        self._close_reason = reason
        if transport.get_write_buffer_size():
            # A graceful close would first wait for the client to read the
            # rest of its echo, which a stuck client never does.
            transport.abort()
        elif not transport.is_closing():
            transport.close()

    def _check_idle(self) -> None:
        lst = self._listener
        due = self._last_received + lst.options.idle_timeout
        if lst.loop.time() < due:
            self._idle_timer = lst.loop.call_at(due, self._check_idle)
            return
        self._idle_timer = None
        lst.idle_closed += 1
        self.close("idle")

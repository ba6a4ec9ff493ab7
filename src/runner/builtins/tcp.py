"""``tcp``: connect to host:port, optionally over TLS, optionally send and expect a reply.

Choices, and why:

* **Each phase is timed on its own**, with the names the http-status check
  uses (``timings_ms: {dns, connect, tls, request, ttfb, transfer}``): the
  name is resolved here, each address is dialled with a plain socket, and TLS
  is negotiated on the connected socket. Phases that did not happen (``tls``
  without TLS, ``request`` without ``send``, ``ttfb`` and ``transfer``
  without ``expect``) are left out rather than reported as 0.
* **The job's timeout is the one clock** for resolving, connecting and the
  handshake: the daemon cancels the run and reports ``timeout``. Reading the
  reply for ``expect`` is the one exception: it stops :data:`REPORT_MARGIN`
  before the job's deadline so the result can say what did come back; a
  ``timeout`` could not.
* **The read is bounded**: at most :data:`READ_LIMIT` bytes of the reply are
  read and matched; a server that streams more is not read further.
* **Escapes in ``send``** (``\\n``, ``\\r``, ``\\t``, ``\\0``, ``\\\\``,
  ``\\xHH``) are decoded here, so ``send: 'PING\\r\\n'`` (single quotes or
  none) means the same bytes as ``send: "PING\\r\\n"`` (double quotes, where
  YAML decodes them itself).
* **The certificate's expiry** is the earliest ``notAfter`` of the chain, read
  the way http-status reads it (``runner.builtins._tls``): the verified chain,
  or with ``verify_tls: false`` what the server sent, so an unverified
  certificate still says when it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import time
from typing import Any

from pydantic import Field, field_validator, model_validator

from runner.builtins._net import format_address
from runner.builtins._regex import Regex
from runner.builtins._tls import earliest_expiry
from runner.plugin import UNRESOLVED_HOST, Check, Options, Result, RunContext, describe_error

__all__ = ["READ_LIMIT", "Tcp", "TcpOptions", "decode_escapes"]

#: The most of the reply that is read and matched against ``expect``.
READ_LIMIT = 64 * 1024

#: Reading the reply stops this long before the job's deadline, so a reply
#: that does not match is reported with what came (at most 10% of the timeout).
REPORT_MARGIN = 0.25

#: How long closing a TLS connection waits for the server's close_notify.
CLOSE_TIMEOUT = 1.0

#: The reply shown in a message or result, in characters.
SHOWN_REPLY = 200

_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "0": b"\0", "\\": b"\\"}


def decode_escapes(text: str) -> bytes:
    """``text`` as UTF-8 bytes, with ``\\n \\r \\t \\0 \\\\ \\xHH`` decoded.

    Raises:
        ValueError: an unknown escape such as ``\\q``, or a trailing backslash.
    """
    out = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(text):
        out += text[pos : match.start()].encode()
        code = match.group(1)
        if code.startswith("x") and len(code) == 3:
            out.append(int(code[1:], 16))
        elif code in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[code]
        else:
            raise ValueError(
                f"unknown escape \\{code} at character {match.start() + 1}; "
                "use \\n, \\r, \\t, \\0, \\\\ or \\xHH"
            )
        pos = match.end()
    rest = text[pos:]
    if rest.endswith("\\"):
        raise ValueError("a backslash at the end escapes nothing; write \\\\ for a backslash")
    out += rest.encode()
    return bytes(out)


class TcpOptions(Options):
    """Options of the ``tcp`` check."""

    host: str = Field(min_length=1, description="Host name or IP address to connect to.")
    port: int = Field(ge=1, le=65535, description="TCP port.")
    tls: bool = Field(False, description="Negotiate TLS once connected.")
    verify_tls: bool = Field(
        True,
        description="With tls: verify the certificate and name against the system's CA store.",
    )
    server_name: str | None = Field(
        None,
        min_length=1,
        description="With tls: the name sent as SNI and checked against the certificate; "
        "default: host.",
    )
    send: str | None = Field(
        None,
        description="Text to send once connected; \\n, \\r, \\t, \\0, \\\\ and \\xHH are "
        "decoded, and it is sent as UTF-8.",
    )
    expect: Regex | None = Field(
        None,
        description=f"A regular expression the reply must match (searched anywhere in it); "
        f"at most {READ_LIMIT // 1024} KiB of the reply are read.",
    )

    @field_validator("send")
    @classmethod
    def _check_send(cls, value: str | None) -> str | None:
        if value is not None:
            decode_escapes(value)
        return value

    @model_validator(mode="after")
    def _tls_options_need_tls(self) -> TcpOptions:
        if not self.tls:
            for name in ("server_name", "verify_tls"):
                if name in self.model_fields_set:
                    raise ValueError(f"{name} is only used with tls: true")
        return self


class Tcp(Check[TcpOptions]):
    """Connects to host:port (optionally with TLS), optionally sends and checks the reply."""

    Options = TcpOptions

    @classmethod
    def target_host(cls, options: TcpOptions) -> str | None:
        return options.host

    def __init__(self, options: TcpOptions) -> None:
        super().__init__(options)
        self._payload = decode_escapes(options.send) if options.send is not None else None
        self._expect = re.compile(options.expect) if options.expect is not None else None

    async def run(self, ctx: RunContext) -> Result:
        opts = self.options
        loop = asyncio.get_running_loop()
        timings: dict[str, float] = {}
        fields: dict[str, Any] = {"host": opts.host, "port": opts.port, "timings_ms": timings}
        where = format_address(opts.host, opts.port)

        started = loop.time()
        try:
            addresses = await _resolve(loop, opts.host, opts.port)
        except socket.gaierror as exc:
            return Result.error(
                f"cannot resolve {opts.host!r}: {exc.strerror or exc}",
                error_type=type(exc).__name__,
                **fields,
                **{UNRESOLVED_HOST: opts.host},
            )
        timings["dns"] = _ms(loop.time() - started)

        started = loop.time()
        try:
            sock = await _connect(loop, addresses)
        except OSError as exc:
            return Result.error(
                f"cannot connect to {where}: {describe_error(exc)}",
                error_type=type(exc).__name__,
                **fields,
            )
        timings["connect"] = _ms(loop.time() - started)
        fields["ip"] = sock.getpeername()[0]

        context = await _tls_context(ctx, opts.verify_tls) if opts.tls else None
        started = loop.time()
        try:
            reader, writer = await asyncio.open_connection(
                sock=sock,
                limit=READ_LIMIT,
                ssl=context,
                server_hostname=(opts.server_name or opts.host) if context else None,
                # The daemon's timeout is the clock; asyncio's own (60 s) must never fire first.
                ssl_handshake_timeout=max(ctx.deadline - loop.time(), 0) + 1 if context else None,
                ssl_shutdown_timeout=CLOSE_TIMEOUT if context else None,
            )
        except OSError as exc:  # ssl.SSLError included
            sock.close()
            return Result.error(
                f"TLS handshake with {where} failed: {describe_error(exc)}",
                error_type=type(exc).__name__,
                **fields,
            )
        except BaseException:
            sock.close()
            raise
        try:
            if context is not None:
                timings["tls"] = _ms(loop.time() - started)
                expiry = earliest_expiry(writer.get_extra_info("ssl_object"))
                if expiry is not None:
                    fields["cert_expires_in_days"] = round((expiry - time.time()) / 86400, 1)
            result = await self._exchange(ctx, reader, writer, timings, fields, where)
        except BaseException:
            # Cancelled at the job's timeout (or failed): no waiting for a goodbye.
            writer.transport.abort()
            raise
        await _close(writer)
        return result

    async def _exchange(
        self,
        ctx: RunContext,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        timings: dict[str, float],
        fields: dict[str, Any],
        where: str,
    ) -> Result:
        """Send, then read and match the reply; the result of a connected run."""
        loop = asyncio.get_running_loop()
        tls = ""
        if "tls" in timings:
            days = fields.get("cert_expires_in_days")
            tls = " (TLS)" if days is None else f" (TLS, certificate expires in {days:g} days)"
        if self._payload is not None:
            started = loop.time()
            try:
                writer.write(self._payload)
                await writer.drain()
            except OSError as exc:
                return Result.error(
                    f"connected to {where}, but sending failed: {describe_error(exc)}",
                    error_type=type(exc).__name__,
                    **fields,
                )
            timings["request"] = _ms(loop.time() - started)
        if self._expect is None:
            return Result.ok(f"connected to {where}{tls}", **fields)

        pattern = self._expect
        reply = bytearray()
        text = ""
        ended = "limit"
        started = first_byte = loop.time()
        margin = min(REPORT_MARGIN, ctx.timeout / 10)
        try:
            async with asyncio.timeout_at(ctx.deadline - margin):
                while len(reply) < READ_LIMIT:
                    chunk = await reader.read(READ_LIMIT - len(reply))
                    if not chunk:
                        ended = "eof"
                        break
                    if not reply:
                        first_byte = loop.time()
                        timings["ttfb"] = _ms(first_byte - started)
                    reply += chunk
                    text = reply.decode("utf-8", errors="replace")
                    if pattern.search(text):
                        ended = "match"
                        break
        except TimeoutError:
            ended = "deadline"
        except OSError as exc:
            if not reply:
                return Result.error(
                    f"connected to {where}, but the connection broke before any reply: "
                    f"{describe_error(exc)}",
                    error_type=type(exc).__name__,
                    **fields,
                )
            # A server that answers and then resets (closing with our request
            # unread does that) still answered: judge what came.
            ended = "reset"
        if reply:
            timings["transfer"] = _ms(loop.time() - first_byte)
        fields["reply"] = _shown(text)
        if ended == "match":
            return Result.ok(f"reply matches /{pattern.pattern}/", **fields)
        why = {
            "eof": "before the server closed the connection",
            "reset": "before the server reset the connection",
            "limit": f"in the first {READ_LIMIT // 1024} KiB",
            "deadline": f"within the job's timeout ({ctx.timeout:g}s)",
        }[ended]
        if not reply:
            return Result.fail(f"no reply {why}; expected /{pattern.pattern}/", **fields)
        return Result.fail(
            f"reply does not match /{pattern.pattern}/ {why}: got {_shown(text)!r}", **fields
        )


async def _resolve(loop: asyncio.AbstractEventLoop, host: str, port: int) -> list[tuple[Any, ...]]:
    """The addresses of host:port, in the resolver's order."""
    hints: dict[str, Any] = {"type": socket.SOCK_STREAM, "proto": socket.IPPROTO_TCP}
    try:
        # An IP address needs no lookup: skip the hop to asyncio's thread pool.
        return socket.getaddrinfo(host, port, flags=socket.AI_NUMERICHOST, **hints)
    except socket.gaierror:
        return await loop.getaddrinfo(host, port, **hints)


async def _connect(
    loop: asyncio.AbstractEventLoop, addresses: list[tuple[Any, ...]]
) -> socket.socket:
    """A socket connected to the first address that accepts; raises the first error."""
    first_error: OSError | None = None
    for family, type_, proto, _, address in addresses:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            first_error = first_error or exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise first_error or OSError(f"no address to connect to: {addresses!r}")


async def _tls_context(ctx: RunContext, verify: bool) -> ssl.SSLContext:
    """The client TLS context, once per daemon: loading the CA store costs milliseconds."""
    return await ctx.shared(
        ("tcp.tls_context", verify), lambda: contextlib.nullcontext(_new_context(verify))
    )


def _new_context(verify: bool) -> ssl.SSLContext:
    if verify:
        return ssl.create_default_context()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close, waiting a moment for TLS's close_notify; never longer than CLOSE_TIMEOUT."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        writer.transport.abort()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN_REPLY else text[:SHOWN_REPLY] + "..."


# ------------------------------------------------------------------ certificate expiry

"""The ``tls-cert`` check: how many days until the TLS certificate of host:port expires.

One TLS handshake per run, with the chain and name verified as a browser
would. When verification fails the certificate is read again over a second,
unverified handshake, so the result still says when it expires and who issued
it: the ``ssl`` module hands out the certificate of a failed handshake only as
DER bytes, which ``cryptography`` parses.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from pydantic import Field, FilePath

from runner.plugin import UNRESOLVED_HOST, Check, Options, Result, RunContext, describe_error

__all__ = ["TlsCert", "TlsCertOptions"]

#: Seconds a closing connection waits for the server's close_notify before it is dropped.
SHUTDOWN_TIMEOUT = 2.0

# OpenSSL's verify codes for a certificate outside its validity period: the
# result already says so in days, the verify message would repeat it.
_X509_V_ERR_CERT_NOT_YET_VALID = 9
_X509_V_ERR_CERT_HAS_EXPIRED = 10


class TlsCertOptions(Options):
    host: str = Field(min_length=1, description="Host name or IP address to connect to.")
    port: int = Field(443, ge=1, le=65535, description="TCP port of the TLS server.")
    server_name: str | None = Field(
        None,
        min_length=1,
        description="Name sent as SNI and matched against the certificate; default: host.",
    )
    min_days: float = Field(
        14, ge=0, allow_inf_nan=False, description="Fail when fewer days than this are left."
    )
    verify: bool = Field(
        True,
        description="Fail unless the chain validates against the trusted CAs and the name "
        "matches. False: only the dates count (self-signed certificates pass).",
    )
    ca_file: FilePath | None = Field(
        None,
        description="A PEM bundle of CA certificates to trust instead of the system's store "
        "(an internal CA, say). Read once per daemon.",
    )


class TlsCert(Check[TlsCertOptions]):
    """Days until the TLS certificate of host:port expires; fails below min_days or untrusted."""

    Options = TlsCertOptions

    @classmethod
    def target_host(cls, options: TlsCertOptions) -> str | None:
        return options.host

    async def run(self, ctx: RunContext) -> Result:
        opts = self.options
        server_name = opts.server_name or opts.host
        where: dict[str, Any] = {"host": opts.host, "port": opts.port}
        try:
            context = await _context(ctx, opts.verify, opts.ca_file)
        except (OSError, ValueError) as exc:
            return Result.error(
                f"cannot load ca_file {str(opts.ca_file)!r}: {exc}",
                error_type=type(exc).__name__,
                **where,
            )

        verify_error: ssl.SSLCertVerificationError | None = None
        try:
            der = await _peer_certificate(opts.host, opts.port, context, server_name)
        except ssl.SSLCertVerificationError as exc:
            verify_error = exc
            try:
                unverified = await _context(ctx, verify=False, ca_file=None)
                der = await _peer_certificate(opts.host, opts.port, unverified, server_name)
            except OSError as again:
                return Result.fail(
                    f"certificate verification failed: {_reason(exc)}; "
                    f"reading it without verification failed too: {describe_error(again)}",
                    **where,
                )
        except OSError as exc:
            if isinstance(exc, socket.gaierror):  # the offline hint counts these
                where[UNRESOLVED_HOST] = opts.host
            return Result.error(
                f"cannot connect: {describe_error(exc)}", error_type=type(exc).__name__, **where
            )

        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            return Result.error(
                f"cannot parse the server's certificate: {exc}",
                error_type=type(exc).__name__,
                **where,
            )
        return _judge(cert, verify_error, opts.min_days, where)


def _judge(
    cert: x509.Certificate,
    verify_error: ssl.SSLCertVerificationError | None,
    min_days: float,
    where: dict[str, Any],
) -> Result:
    """The result for a certificate that was read."""
    now = datetime.now(UTC)
    not_after = cert.not_valid_after_utc
    days_left = round((not_after - now).total_seconds() / 86400, 1)
    fields = {
        "days_left": days_left,
        "not_after": _iso(not_after),
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        **where,
    }
    problems = []
    if not_after <= now:
        problems.append(f"certificate expired {abs(days_left):.1f} days ago ({_iso(not_after)})")
    elif now < cert.not_valid_before_utc:
        problems.append(f"certificate is not valid before {_iso(cert.not_valid_before_utc)}")
    if verify_error is not None and verify_error.verify_code not in (
        _X509_V_ERR_CERT_NOT_YET_VALID,
        _X509_V_ERR_CERT_HAS_EXPIRED,
    ):
        problems.append(f"certificate verification failed: {_reason(verify_error)}")
    if problems:
        return Result.fail("; ".join(problems), **fields)

    expires = f"certificate expires in {days_left:.1f} days ({_iso(not_after)})"
    # Compared as reported, so the message never reads "14.0 days, fewer than 14".
    if days_left < min_days:
        return Result.fail(f"{expires}, fewer than min_days {min_days:g}", **fields)
    return Result.ok(expires, **fields)


async def _context(ctx: RunContext, verify: bool, ca_file: Path | None) -> ssl.SSLContext:
    """The client TLS context, created once per daemon: loading a CA store costs milliseconds."""
    return await ctx.shared(
        ("tls-cert.context", verify, ca_file),
        lambda: contextlib.nullcontext(_new_context(verify, ca_file)),
    )


def _new_context(verify: bool, ca_file: Path | None) -> ssl.SSLContext:
    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    # With a cafile, the default context trusts only that bundle, not the system's store.
    return ssl.create_default_context(cafile=ca_file)


async def _peer_certificate(
    host: str, port: int, context: ssl.SSLContext, server_name: str
) -> bytes:
    """Complete a TLS handshake and return the server's certificate as DER.

    Raises:
        ssl.SSLCertVerificationError: the context verifies and the certificate failed.
        OSError: cannot resolve, connect, or complete the handshake.
    """
    _, writer = await asyncio.open_connection(
        host,
        port,
        ssl=context,
        server_hostname=server_name,
        ssl_shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    try:
        ssl_object: ssl.SSLObject | None = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        # A clean close_notify, so the server does not log an aborted handshake.
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if der is None:
        raise ssl.SSLError("the server sent no certificate")
    return der


def _iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, like the daemon's timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reason(exc: ssl.SSLCertVerificationError) -> str:
    return exc.verify_message or str(exc)

"""Socket and TLS errors in words, for the message of a check's result.

Public API for plugin authors (re-exported by :mod:`runner.plugin`): the
built-in checks use it, so ``http-status``, ``tcp``, ``dns`` and a third-party
check such as ``tls-cert`` word the same failure the same way.
"""

from __future__ import annotations

import os
import socket
import ssl

__all__ = ["describe_error"]

# What OpenSSL says when the other end does not speak TLS (a plain server
# answering, echoing the ClientHello, or closing on it).
_NOT_TLS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "UNEXPECTED_MESSAGE",
        "RECORD_LAYER_FAILURE",
        "PACKET_LENGTH_TOO_LONG",
        "UNEXPECTED_EOF_WHILE_READING",
        "HTTP_REQUEST",
    }
)

#: How many links of ``__cause__``/``__context__`` are followed to find the root cause.
_MAX_CAUSES = 10


def describe_error(exc: BaseException) -> str:
    """What went wrong with a connection, in words a person can act on.

    Follows ``exc``'s causes (``__cause__``, then ``__context__``) to the first
    socket or TLS error, so a library's wrapper (``httpx.ConnectError``,
    ``httpcore.ReadError``, ...) is described by what the operating system or
    OpenSSL said under it. The text starts in lower case and carries no
    context, so a check prefixes its own (``f"cannot connect to {where}: ..."``)::

        TLS certificate not trusted: self-signed certificate
        TLS error: WRONG_VERSION_NUMBER (does this port speak TLS?)
        cannot resolve host: Name or service not known
        connection refused (nothing listens on that port?)
        connection reset by the server
        network is unreachable

    An exception with no socket or TLS error under it is described by its own
    text, or by its type's name when it has none.

    Parameters:
        exc: the exception a connection attempt, a handshake, a read or a
            write raised.

    Returns:
        One line, never empty. It never raises, even for an exception whose
        ``__str__`` does.
    """
    cause: BaseException | None = exc
    for _ in range(_MAX_CAUSES):
        if cause is None:
            break
        words = _os_words(cause)
        if words is not None:
            return words
        cause = cause.__cause__ or cause.__context__
    try:
        text = str(exc).strip()
    except Exception:  # an exception whose __str__ raises
        text = ""
    return text or type(exc).__name__


def _os_words(exc: BaseException) -> str | None:
    """The words for a socket or TLS error; None for any other exception."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message or exc.reason or exc}"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        hint = " (does this port speak TLS?)" if reason in _NOT_TLS else ""
        return f"TLS error: {reason}{hint}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {exc.strerror or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on that port?)"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "connection reset by the server"
    if isinstance(exc, OSError) and exc.errno and exc.errno > 0:
        reason = os.strerror(exc.errno)
        return reason[:1].lower() + reason[1:]
    return None

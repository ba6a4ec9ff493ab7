"""What the built-in services share about listening: how long a queue of
connections the kernel keeps for them, and what they say when they cannot
listen (one wording for all)."""

from __future__ import annotations

import errno
import os

from runner.builtins._net import format_address

__all__ = [
    "UNBOUNDED_BACKLOG",
    "effective_backlog",
    "listen_backlog",
    "listen_error",
    "somaxconn",
]

#: The backlog of a listener without a connection limit (``file-server``):
#: Linux's default ``net.core.somaxconn`` since 5.4, so by default the kernel
#: keeps as many connections waiting as it lets any listener keep.
UNBOUNDED_BACKLOG = 4096

#: The least backlog a listener gets: the kernel's default for asyncio's
#: ``create_server`` (and what the listeners had before it was sized).
MIN_BACKLOG = 100

#: The largest backlog asked for; the kernel caps it lower anyway.
MAX_BACKLOG = 65535


def listen_backlog(max_connections: int | None = None) -> int:
    """How many connections not yet accepted the kernel may queue for a
    listener that serves ``max_connections`` at once (None: no limit).

    A burst of connects as large as the listener is configured to hold then
    waits in the queue instead of overflowing it: an overflow drops the
    handshake, the client retries after a second or more (or gets a SYN
    cookie), and a connection can come out of the queue after its client has
    gone, to be held silent until the idle timeout. The kernel caps the
    value at ``net.core.somaxconn`` (:func:`somaxconn`).
    """
    if max_connections is None:
        return UNBOUNDED_BACKLOG
    return min(max(MIN_BACKLOG, max_connections), MAX_BACKLOG)


def somaxconn() -> int | None:
    """The kernel's cap on any listen backlog (``net.core.somaxconn``), or None
    where it cannot be read (not Linux)."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def effective_backlog(backlog: int) -> int:
    """``backlog`` as the kernel applies it: capped at ``net.core.somaxconn``."""
    cap = somaxconn()
    return backlog if cap is None else min(backlog, cap)


_HINTS = {
    "EADDRINUSE": " (another process is listening there; stop it or choose another port)",
    "EACCES": " (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
    "EADDRNOTAVAIL": " (no interface of this machine has that address)",
}


def listen_error(host: str, port: int, exc: OSError) -> OSError:
    """The error to raise when listening on host:port failed with ``exc``:
    ``cannot listen on 127.0.0.1:8001: address already in use (another
    process is listening there; stop it or choose another port)``.

    Its ``errno`` is the original one; its text is the message alone (no
    ``[Errno 98]`` in front), as it is logged and shown by ``runner run``.
    """
    if exc.errno is not None and exc.errno > 0:
        reason = os.strerror(exc.errno)
    else:  # getaddrinfo errors have negative codes and their text in strerror
        reason = exc.strerror or str(exc)
    reason = reason[:1].lower() + reason[1:]
    hint = _HINTS.get(errno.errorcode.get(exc.errno or 0, ""), "")
    error = OSError(f"cannot listen on {format_address(host, port)}: {reason}{hint}")
    error.errno = exc.errno
    return error

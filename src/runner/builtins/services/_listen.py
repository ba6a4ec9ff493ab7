"""What the built-in services say when they cannot listen: one wording for all."""

from __future__ import annotations

import errno
import os

from runner.builtins._net import format_address

__all__ = ["listen_error"]

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

"""Talking to systemd: service notification (``sd_notify``), hand-written.

The protocol: systemd puts the path of a Unix datagram socket in
``NOTIFY_SOCKET`` (an absolute path, or ``@name`` for a socket in Linux's
abstract namespace, whose address starts with a NUL byte instead). The service
sends it datagrams of ``KEY=VALUE`` lines separated by ``\\n``:
``READY=1`` once started (``Type=notify``), ``RELOADING=1`` plus
``MONOTONIC_USEC`` when a reload begins and ``READY=1`` when it is done
(``Type=notify-reload``), ``STOPPING=1``, free text in ``STATUS=`` and
``WATCHDOG=1`` pings. With ``WatchdogSec=`` set, systemd passes the timeout in
``WATCHDOG_USEC`` (and the pid it applies to in ``WATCHDOG_PID``); pinging at
half of it is the usual margin.

Why no dependency: the whole client is one socket and one ``sendto``. The
PyPI options are ``sdnotify`` (pure Python, unreleased since 2017, parses no
watchdog variables), ``systemd-python``/``cysystemd`` (C extensions that need
libsystemd at build time) and small single-author asyncio wrappers. None of
them is better than these lines, and here the two properties the daemon
needs are explicit: a send never blocks the event loop and never raises.

Outside systemd (no ``NOTIFY_SOCKET``) the notifier is disabled and every
method does nothing, so the daemon calls it unconditionally.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, MutableMapping

from runner.log import get_logger

#: The variables systemd passes; removed from the real process environment.
ENV_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _one_line(value: str) -> str:
    """A field value cannot span lines: each line of a message is a field."""
    return " ".join(value.splitlines())


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, or None (as ``sd_watchdog_enabled``)."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = environ.get("WATCHDOG_PID")
    if pid is not None:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 2 / 1_000_000


class SystemdNotifier:
    """Sends state changes to systemd over ``NOTIFY_SOCKET``; a no-op outside it.

    Create it once per process with :meth:`from_environ`. Every method is safe
    to call from the event loop: the socket is non-blocking, so a message that
    does not fit (systemd not reading) is dropped, and a failed send is logged
    as ``notify.failed`` once per distinct error until a send succeeds again,
    never raised.

    Attributes:
        enabled: True while there is a socket to send to.
        watchdog_interval: Seconds between :meth:`watchdog` pings (half of
            ``WATCHDOG_USEC``), or None when systemd expects no pings from this
            process or the notifier is disabled.
    """

    def __init__(self, address: str | None, watchdog_interval: float | None = None) -> None:
        """Use :meth:`from_environ`; this is for tests and explicit setups.

        Parameters:
            address: The ``NOTIFY_SOCKET`` value (absolute path or ``@name``),
                or None for a disabled notifier.
            watchdog_interval: Seconds between watchdog pings, or None.
        """
        self._address = address or ""
        self._target: bytes = b""
        self._sock: socket.socket | None = None
        self._reported: set[tuple[str, int | None]] = set()
        if address:
            if address.startswith("@"):
                # Abstract namespace: the name follows a NUL byte and has no file.
                self._target = b"\0" + os.fsencode(address[1:])
            elif address.startswith("/"):
                self._target = os.fsencode(address)
            else:
                # sd_notify rejects relative paths too; vsock: addresses are not supported.
                self._report(ValueError(f"unsupported NOTIFY_SOCKET address {address!r}"))
            if self._target:
                try:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sock.setblocking(False)
                except OSError as exc:
                    self._report(exc)
                    self._sock = None
        self.enabled: bool = self._sock is not None
        self.watchdog_interval: float | None = watchdog_interval if self.enabled else None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier:
        """Build a notifier from ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``.

        Parameters:
            environ: The variables to read. None means the real process
                environment, and then the three variables are also removed
                from ``os.environ`` (like ``sd_notify(unset_environment=1)``)
                so that child processes (the browser, node, plugin
                subprocesses) neither inherit the socket nor think the
                watchdog applies to them. So call this once per process: a
                second call finds nothing and returns a disabled notifier.
        """
        env: Mapping[str, str] = os.environ if environ is None else environ
        notifier = cls(env.get("NOTIFY_SOCKET"), _watchdog_interval(env))
        if environ is None:
            real: MutableMapping[str, str] = os.environ
            for name in ENV_VARS:
                real.pop(name, None)
        return notifier

    def ready(self, status: str | None = None) -> None:
        """Startup (or a reload) is complete: ``READY=1``, with an optional ``STATUS``."""
        self.send(READY=1, **({} if status is None else {"STATUS": status}))

    def reloading(self) -> None:
        """A reload begins: ``RELOADING=1`` and ``MONOTONIC_USEC``; send :meth:`ready` after it.

        ``Type=notify-reload`` (systemd 253+) requires the timestamp to tell
        this reload from an earlier one.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send(RELOADING=1, MONOTONIC_USEC=usec)

    def stopping(self, status: str | None = None) -> None:
        """Shutdown begins: ``STOPPING=1``, with an optional ``STATUS``."""
        self.send(STOPPING=1, **({} if status is None else {"STATUS": status}))

    def status(self, text: str) -> None:
        """Free-form status text shown by ``systemctl status`` (one line)."""
        self.send(STATUS=text)

    def watchdog(self) -> None:
        """Watchdog keep-alive ping: ``WATCHDOG=1``."""
        self.send(WATCHDOG=1)

    def send(self, **fields: str | int) -> bool:
        """Send one message of ``KEY=VALUE`` lines; newlines in values become spaces.

        Returns:
            True if the datagram was handed to the kernel; False if the
            notifier is disabled, a field name is invalid, or the send failed
            (socket gone, buffer full, ...). Never raises.
        """
        if self._sock is None:
            return False
        lines = []
        for key, value in fields.items():
            if not key or "=" in key or "\n" in key:
                self._report(ValueError(f"invalid notify field name {key!r}"))
                return False
            text = str(int(value)) if isinstance(value, int) else _one_line(value)
            lines.append(f"{key}={text}")
        if not lines:
            return False
        try:
            self._sock.sendto("\n".join(lines).encode(), self._target)
        except OSError as exc:
            self._report(exc)
            return False
        # A later outage is news again: log it once more.
        self._reported.clear()
        return True

    def close(self) -> None:
        """Close the socket; the notifier is disabled afterwards. Idempotent."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self.enabled = False
        self.watchdog_interval = None

    def _report(self, exc: Exception) -> None:
        """Log a failure once per kind of error, so watchdog ticks do not flood the log."""
        key = (type(exc).__name__, getattr(exc, "errno", None))
        if key in self._reported:
            return
        self._reported.add(key)
        get_logger().warning("notify.failed", error=str(exc), socket=self._address)

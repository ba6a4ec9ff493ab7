"""Structured logging: JSON lines off a terminal, readable colored lines on one.

Everything the daemon says goes through structlog to stdout, one event per
line, each line whole, so systemd's journal or a log shipper gets each line
as it happens (a result's within :data:`HOLD_S`, see :func:`hold_lines`).
Event names are stable and grep-able (``job.finished``, ``service.started``);
values are fields, never formatted into the message.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, BinaryIO, Literal, TextIO, cast

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from runner.safe_json import json_safe, text
from runner.secrets import secret_masker as secret_masker  # the engine imports it from here

LogFormat = Literal["auto", "json", "journal", "console"]

#: syslog priorities for systemd's SyslogLevelPrefix= (``<3>`` = err).
_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}

#: Fields put first in every JSON line, in this order; the rest follow as logged.
_FIRST = ("timestamp", "level", "event", "job", "plugin", "status", "duration_ms")


def _order_fields(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    ordered = {key: event.pop(key) for key in _FIRST if key in event}
    ordered.update(event)
    return ordered


def configure_logging(
    fmt: LogFormat = "auto",
    level: str = "info",
    stream: TextIO | None = None,
    *,
    own_stdout: bool = False,
) -> bool:
    """Set up structlog for the process. Returns True when output is for humans.

    ``own_stdout``: JSON lines on stdout are the daemon's alone; anything else
    written to stdout (a plugin's ``print``) goes to stderr.
    """
    out = stream if stream is not None else sys.stdout
    human = fmt == "console" or (fmt == "auto" and out.isatty())
    factory: structlog.WriteLoggerFactory | structlog.BytesLoggerFactory
    factory = structlog.WriteLoggerFactory(file=out)
    stamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        stamper,
    ]
    global _result_lines
    _result_lines = None
    min_level = logging.getLevelNamesMapping()[level.upper()]
    if human:
        processors += [secret_masker, structlog.dev.ConsoleRenderer(colors=True)]
    else:
        if stream is None and own_stdout:
            out = _private_stdout()
        plain_renderer = structlog.processors.JSONRenderer(default=_last_resort, allow_nan=False)

        def json_renderer(logger: WrappedLogger, name: str, event: EventDict) -> bytes:
            # orjson: a line in about a tenth of the json module's time, and
            # every result is a line. Whatever it refuses (a plugin's ctx.log
            # with a tuple key, an int past 64 bits, text with lone surrogates)
            # still makes one valid line through json_safe and the json module.
            # (A NaN a plugin logs comes out as null; a result's is "nan".)
            try:
                return orjson.dumps(event, default=_last_resort)
            except TypeError:
                return str(plain_renderer(logger, name, json_safe(event))).encode()

        # Masked after the traceback is rendered: an exception's text can hold a secret.
        processors += [structlog.processors.dict_tracebacks, secret_masker, _order_fields]

        def journal_renderer(logger: WrappedLogger, name: str, event: EventDict) -> bytes:
            # The journal strips the <N> prefix and files the line at that
            # priority, so `journalctl -p warning` shows fails and errors.
            prio = _PRIORITY.get(str(event.get("level")), 6)
            return b"<%d>%s" % (prio, json_renderer(logger, name, event))

        render = journal_renderer if fmt == "journal" else json_renderer
        if isinstance(out, _LineWriter):
            processors.append(render)
            factory = structlog.BytesLoggerFactory(file=cast(BinaryIO, out))
            _result_lines = _ResultLines(processors, render, out, min_level)
        else:  # a text stream (tests, benchmarks)

            def text_renderer(logger: WrappedLogger, name: str, event: EventDict) -> str:
                return render(logger, name, event).decode()

            processors.append(text_renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(min_level),
        # Both loggers write each line whole; piped output is held back at
        # most HOLD_S while the daemon's loop runs (hold_lines).
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    # Libraries that use the standard logging module (httpx logs every request
    # URL at INFO) stay quiet unless something is wrong.
    for name in ("httpx", "httpcore", "asyncio"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).level))
    _route_library_logging()
    return human


def _last_resort(value: Any) -> Any:
    """JSON for what json cannot encode: a value of a plugin's never loses the line."""
    return text(value)


#: Lines written on the event loop's thread wait at most this long, or until
#: this many bytes wait, and are then written with one ``write``: at 10,000
#: results a second a system call per line was an eighth of the loop's time
#: (bench/README.md, "Issue 23"). A stop writes what waits (see hold_lines).
HOLD_S = 0.01
HOLD_BYTES = 64 * 1024


class _LineWriter:
    """Writes each log line whole to a file descriptor only the log uses.

    While :func:`hold_lines` is in force, lines written on the loop's own
    thread are held up to :data:`HOLD_S` and written together; a line from
    any other thread writes the held ones first, then itself, so the order
    is always the order of the calls. Only result lines (``log_result``) stay
    held: structlog flushes after every other event, which writes the held
    lines and that event at once.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lock = threading.Lock()
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._timer: asyncio.TimerHandle | None = None

    def write(self, text: str | bytes) -> None:
        data = text if isinstance(text, bytes) else text.encode("utf-8", "backslashreplace")
        with self._lock:
            if self._loop is not None and threading.get_ident() == self._loop_thread:
                self._held.append(data)
                self._held_bytes += len(data)
                if self._held_bytes >= HOLD_BYTES:
                    self._write_held()
                elif self._timer is None:
                    self._timer = self._loop.call_later(HOLD_S, self.flush)
                return
            if self._held:
                self._write_held()
            self._write_all(data)

    def flush(self) -> None:
        with self._lock:
            self._write_held()

    def _write_held(self) -> None:
        # Only the loop's thread touches its timer (uvloop's are libuv's, not
        # thread-safe): from another thread the timer is left to fire on
        # nothing held, and to be set again after it.
        if self._timer is not None and threading.get_ident() == self._loop_thread:
            self._timer.cancel()
            self._timer = None
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            self._held_bytes = 0
            self._write_all(data)

    def _write_all(self, data: bytes) -> None:
        while data:
            data = data[os.write(self.fd, data) :]

    def hold(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Hold the lines of ``loop``'s thread (this thread), or with None
        write what is held and hold no more."""
        with self._lock:
            self._write_held()
            self._loop = loop
            self._loop_thread = threading.get_ident() if loop is not None else None

    def isatty(self) -> bool:
        return os.isatty(self.fd)


@contextmanager
def hold_lines(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """While the daemon's loop runs, hold its log lines briefly and write them
    together (:data:`HOLD_S`); at the end, and before the process forks or
    exits, write what is held. Nothing is held when the log is not the
    process's own stdout (a terminal, a test's stream)."""
    out = _held_writer
    if out is None:
        yield
        return
    out.hold(loop)
    try:
        yield
    finally:
        out.hold(None)


#: The log's own stdout once configure_logging made one (own_stdout).
_held_writer: _LineWriter | None = None


def flush_lines() -> None:
    """Write the lines held now (before an ``os._exit``, which skips atexit)."""
    if _held_writer is not None:
        _held_writer.flush()


def _private_stdout() -> TextIO:
    """The process's stdout for the log alone; ``print`` and fd 1 go to stderr.

    A plugin that prints (or a library, or a child process writing to fd 1)
    would glue its text onto a JSON line. The log keeps a duplicate of the
    original stdout, and fd 1 (and ``sys.stdout``) become stderr, so stray
    text lands on stderr and every stdout line stays one JSON object.
    """
    try:
        sys.stdout.flush()
        fd = os.dup(sys.stdout.fileno())
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real stdout (tests capture it)
        return sys.stdout
    os.set_inheritable(fd, False)
    sys.stdout = sys.stderr
    global _held_writer
    writer = _held_writer = _LineWriter(fd)
    # A forked child must not write its parent's held lines again; an exit
    # that skips the loop's end (an unhandled error) must not lose them.
    os.register_at_fork(before=writer.flush)
    atexit.register(writer.flush)
    return cast(TextIO, writer)


def get_logger(**bound: Any) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("runner")
    return logger.bind(**bound) if bound else logger


class _ResultLines:
    """The line of every result, made by the very processors configure_logging
    chose for JSON output, without structlog's dispatch around them (binding,
    copying the context, a call per processor): a third of a line's cost.

    Used only while the processors it was made from are the ones in force
    (the same objects, in the same order, as ``structlog.get_config()``
    reports them); under ``structlog.testing.capture_logs`` or another
    configuration, :func:`log_result` says so and the caller logs through
    structlog as usual.
    """

    def __init__(
        self,
        processors: list[Processor],
        render: Callable[[WrappedLogger, str, EventDict], bytes],
        out: _LineWriter,
        min_level: int,
    ) -> None:
        #: The chain as configured: compared by value, not by the list's identity,
        #: so that it holds whether structlog keeps the list it was given or a
        #: copy, and whether capture_logs edits that list in place or replaces it.
        self.processors = tuple(processors)
        self._stamp = _UtcStamp()
        self._render = render
        self._out = out
        self._min_level = min_level

    def in_force(self) -> bool:
        # A tuple's == compares items by identity first: same objects, same order.
        return tuple(structlog.get_config()["processors"]) == self.processors

    def write(self, level: str, event: str, fields: Mapping[str, Any]) -> None:
        if _LEVEL_NUMBERS[level] < self._min_level:
            return
        # In the order the chain gives: timestamp, level, event, then the
        # fields (a result's come with job, plugin, status, duration_ms
        # first), then any structlog contextvars.
        line: EventDict = {"timestamp": None, "level": level, "event": event, **fields}
        structlog.contextvars.merge_contextvars(None, level, line)
        line["timestamp"] = self._stamp()
        line = secret_masker(None, level, line)
        self._out.write(self._render(None, level, line) + b"\n")


class _UtcStamp:
    """The time now as structlog's ``TimeStamper(fmt="iso", utc=True)`` writes
    it (``datetime.now(UTC).isoformat()`` with ``Z``: microseconds floored,
    none written when 0), its date and time made once a second, not for
    every line: a sixth of a result line's cost."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        second, micro = divmod(time.time_ns() // 1000, 1_000_000)
        if second != self._second:
            moment = datetime.fromtimestamp(second, UTC).replace(tzinfo=None)
            self._prefix, self._second = moment.isoformat(), second
        return f"{self._prefix}.{micro:06d}Z" if micro else f"{self._prefix}Z"


_LEVEL_NUMBERS = logging.getLevelNamesMapping() | {
    name: logging.getLevelNamesMapping()[name.upper()] for name in _PRIORITY
}
_result_lines: _ResultLines | None = None


def log_result(level: str, event: str, fields: Mapping[str, Any]) -> bool:
    """Write one event the fast way (see :class:`_ResultLines`); False when the
    logging configuration in force is not one it can stand in for."""
    lines = _result_lines
    if lines is None or not lines.in_force():
        return False
    lines.write(level, event, fields)
    return True


class _LibraryHandler(logging.Handler):
    """Logging's last resort as ``library.log`` events.

    A library's warning or error that no handler takes goes to
    ``logging.lastResort``, which prints it to stderr as plain text: aiohttp
    printed "Error handling request" and a traceback for each malformed
    request to the HTTP endpoint, into the journal between the JSON lines.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = record.levelname.lower()
            method = level if level in _PRIORITY else "error"
            fields: dict[str, Any] = {"logger": record.name, "message": record.getMessage()}
            if record.exc_info:
                fields["exc_info"] = record.exc_info
            getattr(get_logger(), method)("library.log", **fields)
        except Exception:
            self.handleError(record)


def _route_library_logging() -> None:
    # Replaces the last resort itself, not a root handler: records that some
    # handler already takes stay where they were (Apprise's NullHandler keeps
    # its warnings, which quote whole URLs with their tokens, silent).
    logging.lastResort = _LibraryHandler(logging.WARNING)
    # Python's warnings ("coroutine ... was never awaited", deprecations) are
    # printed to stderr as text too; through logging they become the same
    # events. (Captured warnings skip the last resort: logging gives their
    # logger a NullHandler unless it has a handler, so it gets ours.)
    warnings_log = logging.getLogger("py.warnings")
    if not any(isinstance(h, _LibraryHandler) for h in warnings_log.handlers):
        warnings_log.addHandler(_LibraryHandler(logging.WARNING))
    logging.captureWarnings(True)

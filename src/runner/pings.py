"""Checks that are told instead of asking: pings, and the checks that take them.

A :class:`PingedCheck` is a check whose job's runs come from outside: a cron
wrapper or a script pings the daemon's HTTP endpoint (``/ping/<job>``,
``/ping/<job>/start``, ``/ping/<job>/fail``, ``/ping/<job>/<exit status>``),
and each ping makes the job run at once and restarts its schedule from then.
Its schedule is its deadlines (:mod:`runner.schedules.deadline`), built from
its options by :meth:`PingedCheck.schedule_for`: when it comes round, no ping
came in time. The built-in ``heartbeat`` check is one; a plugin may write
another (a ping that must carry a given body, say) with this public API::

    from runner.pings import PingedCheck
    from runner.plugin import Result, RunContext

    class Backup(PingedCheck[BackupOptions]):
        Options = BackupOptions

        @classmethod
        def schedule_for(cls, options: BackupOptions) -> Schedule:
            return Deadline(options.period, options.grace)

        async def run(self, ctx: RunContext) -> Result:
            taken = self.take()
            if taken is None:
                return Result.fail("no ping in time")
            ping, _start = taken
            return Result.ok() if ping.ok else Result.fail("the backup failed")

Each run reads one finishing ping (:meth:`PingedCheck.take`): a ping is one
run and one result, however fast they come.
"""

from __future__ import annotations

import enum
from abc import abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

from runner.plugin import Check
from runner.schedules import Schedule

__all__ = ["MAX_WAITING", "PING_BODY_LIMIT", "Ping", "PingKind", "PingedCheck"]

#: The bytes of a ping's body that are kept (the rest is never buffered).
PING_BODY_LIMIT = 10 * 1024
#: Pings a job keeps waiting for its runs; past it the oldest are dropped.
MAX_WAITING = 1000

OptionsT = TypeVar("OptionsT", bound=BaseModel)


class PingKind(enum.StrEnum):
    """What a ping says: the job succeeded, started, or failed."""

    SUCCESS = "success"
    START = "start"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Ping:
    """One ping received.

    Attributes:
        kind: success, start or fail (an exit status other than 0 is a fail).
        at: when it arrived, wall-clock seconds (``time.time()``).
        exit_status: the status of ``/ping/<job>/<status>`` (0-255), else None.
        body: the first :data:`PING_BODY_LIMIT` bytes of the request's body.
        truncated: the body was longer than that.
    """

    kind: PingKind
    at: float
    exit_status: int | None = None
    body: bytes = b""
    truncated: bool = False

    @classmethod
    def exit(cls, status: int, at: float, body: bytes = b"", truncated: bool = False) -> Ping:
        """The ping of an exit status: a success for 0, a fail for anything else.

        Raises:
            ValueError: ``status`` is not in 0-255.
        """
        if not 0 <= status <= 255:
            raise ValueError(f"exit status {status} is not in 0-255")
        kind = PingKind.SUCCESS if status == 0 else PingKind.FAIL
        return cls(kind, at, status, body, truncated)

    @property
    def ok(self) -> bool:
        return self.kind is PingKind.SUCCESS


class PingedCheck(Check[OptionsT]):
    """A check that is pinged: its runs are the pings it receives and its deadlines.

    The daemon hands each ping to :meth:`receive`; a success or fail ping
    then makes the job run at once, and its schedule restart from the ping.
    A job of a pinged check takes no ``interval`` (its schedule is
    :meth:`schedule_for` its options) and no retries.

    Thresholds: a pinged job's deadline already holds the grace it is
    allowed, so by default one missed deadline (or fail ping) makes it down
    and one good ping makes it recovered (:attr:`failure_threshold`,
    :attr:`success_threshold`), as on healthchecks.io. A job's own
    ``failure_threshold``/``success_threshold`` still win; the
    ``defaults:`` section's do not apply to it.
    """

    #: Results in a row that make a job down / recovered, unless the job says otherwise.
    failure_threshold: ClassVar[int] = 1
    success_threshold: ClassVar[int] = 1

    def __init__(self, options: OptionsT) -> None:
        super().__init__(options)
        self._waiting: deque[Ping] = deque()
        self._finishing = 0
        #: The last start ping not followed by a finishing one yet.
        self.started: Ping | None = None
        #: Pings dropped because :data:`MAX_WAITING` were waiting.
        self.dropped = 0

    @classmethod
    @abstractmethod
    def schedule_for(cls, options: Any) -> Schedule:
        """The job's deadlines, from its validated options (an instance of
        ``cls.Options``): usually a :class:`~runner.schedules.Deadline`.
        Raise ``ValueError`` for options that give none."""

    @classmethod
    def ping_key(cls, options: Any) -> str | None:
        """The secret that pings this job (``/ping/<key>``), or None to be
        pinged by the job's name. The default: None."""
        return None

    def receive(self, ping: Ping) -> bool:
        """Keep ``ping`` for the next run; True when the job should run now
        (a success or a fail), False for a start."""
        if len(self._waiting) >= MAX_WAITING:
            if self._waiting.popleft().kind is not PingKind.START:
                self._finishing -= 1
            self.dropped += 1
        self._waiting.append(ping)
        if ping.kind is PingKind.START:
            return False
        self._finishing += 1
        return True

    @property
    def pending(self) -> bool:
        """Whether a success or fail ping waits for a run."""
        return self._finishing > 0

    def take(self) -> tuple[Ping, Ping | None] | None:
        """The oldest success or fail ping waiting, with the start ping that
        came before it (None without one); None when no such ping waits. A
        start ping without its finish stays in :attr:`started`."""
        waiting = self._waiting
        while waiting:
            ping = waiting.popleft()
            if ping.kind is PingKind.START:
                self.started = ping
                continue
            self._finishing -= 1
            start, self.started = self.started, None
            return ping, start
        return None

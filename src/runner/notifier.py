"""The public notifier API: how runner tells people that a job went down or recovered.

A notifier is a class registered under an entry point in the
``runner.notifiers`` group, found and loaded by the same registry as check
plugins (the built-in ``webhook``, ``log`` and ``apprise`` too). The daemon
creates one instance per ``notifiers:`` entry of the config, with its
options validated by the notifier's ``Options`` model, and calls
:meth:`Notifier.send` from a task of its own for each :class:`Alert`: a slow
or failing notifier never delays a check. ``send`` raises to say the alert
was not delivered; the daemon logs it (once per episode) and counts it.

A minimal notifier::

    from runner.notifier import Alert, Notifier, NotifyContext
    from runner.plugin import Options

    class PrintOptions(Options):
        prefix: str = "ALERT"

    class Print(Notifier[PrintOptions]):
        \"\"\"Prints alerts.\"\"\"
        Options = PrintOptions

        async def send(self, alert: Alert, ctx: NotifyContext) -> None:
            print(self.options.prefix, alert.title)
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from runner.model import RunRecord, format_time
from runner.plugin import OptionsT, Plugin, _Context
from runner.resources import Resources

__all__ = ["Alert", "AlertEvent", "Notifier", "NotifyContext"]


class AlertEvent(StrEnum):
    """What an alert says: the job went ``down``, ``recovered``, is still down
    (``reminder``), or someone asked for a ``test`` (``runner notify-test``)."""

    DOWN = "down"
    RECOVERED = "recovered"
    REMINDER = "reminder"
    TEST = "test"


@dataclass(frozen=True, slots=True)
class Alert:
    """One notification about one job.

    Attributes:
        job, plugin: the job's name and plugin.
        event: see :class:`AlertEvent`.
        since: for ``down`` and ``reminder``, when the job began failing (the
            first failure of the streak); for ``recovered``, when it came
            back. UTC seconds since the epoch.
        last: the job's last result.
        consecutive: the length of the current streak (failures for
            ``down``/``reminder``, successes for ``recovered``).
        status_page: a link to the job on the daemon's status page, when
            there is one.
        rule: for a job whose rule counts in a window (``down_when``,
            ``up_when``), the rule that was met: ``3 failures of the last
            5``; None for a rule of results in a row, which ``consecutive``
            says.
        down_since: when the incident began (the first failure of the
            streak that made the job down): for ``recovered``, the incident
            that ended; for ``down`` and ``reminder``, ``since``. None when
            it is not known (and for ``test``).
        locations: for a check run from several locations (``locations:``),
            what each says: ``down from eu-west, us-east: cannot connect; ok
            from ap-south``; else None.
    """

    job: str
    plugin: str
    event: AlertEvent
    since: float | None
    last: RunRecord | None
    consecutive: int
    status_page: str | None = None
    rule: str | None = None
    down_since: float | None = None
    locations: str | None = None

    @property
    def title(self) -> str:
        """One line: ``api is DOWN``, ``api recovered``."""
        return {
            AlertEvent.DOWN: f"{self.job} is DOWN",
            AlertEvent.RECOVERED: f"{self.job} recovered",
            AlertEvent.REMINDER: f"{self.job} is still DOWN",
            AlertEvent.TEST: "test alert from runner",
        }[self.event]

    @property
    def down_for(self) -> float | None:
        """How long the job was down (``recovered``: the whole incident) or has
        been down so far (``down``, ``reminder``: until its last result), in
        seconds; None when that is not known."""
        if self.down_since is None:
            return None
        if self.event is AlertEvent.RECOVERED:
            end = self.since
        elif self.event is AlertEvent.TEST:
            return None
        else:
            end = self.last.finished_at if self.last is not None else None
        return None if end is None else max(0.0, end - self.down_since)

    @property
    def body(self) -> str:
        """The lines under the title (a chat message's or an e-mail's body),
        without the title: for targets that show a title of their own."""
        if self.event is AlertEvent.TEST:
            return "This is a test, sent by runner notify-test. No job is down."
        lines = []
        down_for = self.down_for
        if self.event is AlertEvent.RECOVERED and down_for is not None:
            assert self.down_since is not None
            lines.append(f"down for {_span(down_for)}, since {_when(self.down_since)}")
        elif self.event is AlertEvent.REMINDER and down_for is not None:
            lines.append(f"down for {_span(down_for)} so far")
        if self.locations is not None:
            lines.append(self.locations)
        if self.last is not None:
            what = self.last.status.value
            where = f" (from {self.last.location})" if self.locations is not None else ""
            lines.append(
                f"last result{where}: {what}"
                + (f": {self.last.message}" if self.last.message else "")
            )
        if self.since is not None:
            since = "down since" if self.event is not AlertEvent.RECOVERED else "up since"
            streak = self.rule or f"{self.consecutive} in a row"
            lines.append(f"{since} {_when(self.since)} ({streak})")
        if self.status_page:
            lines.append(self.status_page)
        return "\n".join(lines)

    @property
    def text(self) -> str:
        """The title, then the body: for targets with one text field only."""
        return f"{self.title}\n{self.body}"

    def to_json(self) -> dict[str, Any]:
        """The documented body of an alert (the ``webhook`` notifier POSTs it)."""
        return {
            "job": self.job,
            "plugin": self.plugin,
            "event": self.event.value,
            "since": format_time(self.since) if self.since is not None else None,
            "last": self.last.to_json() if self.last is not None else None,
            "consecutive": self.consecutive,
            "rule": self.rule,
            "status_page": self.status_page,
            "title": self.title,
            "text": self.text,
            "body": self.body,
            "down_since": format_time(self.down_since) if self.down_since is not None else None,
            "down_for": self.down_for,
            "locations": self.locations,
        }


def _when(epoch: float) -> str:
    """``2026-12-07 21:25:37 UTC``: a time for people, to the second."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(seconds: float) -> str:
    """``45s``, ``12m 30s``, ``3h 5m``, ``2d 4h``: a duration for people."""
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    return " ".join(f"{n}{unit}" for n, unit in parts[:2] if n or unit == parts[0][1])


class NotifyContext(_Context):
    """What one delivery receives.

    Attributes:
        notifier: the notifier's name in the config (``ops``).
        log: a structlog logger bound to the notifier and the job.
        resources: the daemon's shared resources (an HTTP client, say).
    """

    def __init__(self, *, notifier: str, job: str, plugin: str, resources: Resources) -> None:
        super().__init__(job=job, plugin=plugin, resources=resources)
        self.notifier = notifier


class Notifier(Plugin[OptionsT]):
    """A plugin that delivers alerts.

    ``send`` delivers one alert or raises; the exception's message is logged
    (keep secrets out of it). The daemon bounds each call with the notifier
    entry's ``timeout``.
    """

    kind: ClassVar[str] = "notifier"

    @abstractmethod
    async def send(self, alert: Alert, ctx: NotifyContext) -> None:
        """Deliver ``alert``; raise if it could not be delivered."""

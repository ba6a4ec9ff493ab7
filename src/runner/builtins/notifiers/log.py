"""``log``: an alert as one structured log event (``alert.down``, ``alert.recovered``,
``alert.reminder``, ``alert.test``), for people who ship logs elsewhere, and tests."""

from __future__ import annotations

from runner.model import format_time
from runner.notifier import Alert, Notifier, NotifyContext
from runner.plugin import NoOptions

__all__ = ["LogNotifier"]


class LogNotifier(Notifier[NoOptions]):
    """Logs each alert as an alert.<event> event."""

    Options = NoOptions

    async def send(self, alert: Alert, ctx: NotifyContext) -> None:
        level = "info" if alert.event.value in ("recovered", "test") else "warning"
        getattr(ctx.log, level)(
            f"alert.{alert.event.value}",
            notifier=ctx.notifier,
            since=format_time(alert.since) if alert.since is not None else None,
            consecutive=alert.consecutive,
            down_for=alert.down_for,
            message=alert.last.message if alert.last is not None else None,
        )

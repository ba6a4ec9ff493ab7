"""``apprise``: hand each alert to the Apprise library, which speaks to about a
hundred services (Slack, Discord, Microsoft Teams, Telegram, ntfy, Gotify,
Matrix, PagerDuty, e-mail, ...) by URL: ``slack://...``, ``ntfys://...``,
``mailto://...``. See https://github.com/caronc/apprise/wiki for the URLs.

Install with ``pip install 'runner-daemon[apprise]'``; Apprise is imported on the
first alert, so a daemon without an apprise notifier never loads it. URLs
usually carry tokens: put them in the environment (``${SLACK_APPRISE_URL}``);
errors name only a URL's scheme.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from runner.notifier import Alert, AlertEvent, Notifier, NotifyContext
from runner.plugin import Options

__all__ = ["AppriseNotifier", "AppriseOptions"]


class AppriseOptions(Options):
    # Apprise URLs carry tokens: keep them out of validation errors.
    model_config = ConfigDict(hide_input_in_errors=True)

    urls: list[str] = Field(min_length=1, description="Apprise URLs: where to send each alert.")


def _scheme(url: str) -> str:
    return url.partition("://")[0] + "://..." if "://" in url else "(not a URL)"


class AppriseNotifier(Notifier[AppriseOptions]):
    """Sends each alert through Apprise to any of ~100 services, by URL."""

    Options = AppriseOptions

    def __init__(self, options: AppriseOptions) -> None:
        super().__init__(options)
        self._apprise: Any = None

    def _client(self) -> Any:
        if self._apprise is None:
            try:
                import apprise
            except ImportError as exc:
                raise RuntimeError(
                    "the apprise notifier needs Apprise: pip install 'runner-daemon[apprise]'"
                ) from exc
            client = apprise.Apprise()
            for url in self.options.urls:
                if not client.add(url):
                    raise ValueError(f"Apprise does not understand the URL {_scheme(url)}")
            self._apprise = client
        return self._apprise

    async def send(self, alert: Alert, ctx: NotifyContext) -> None:
        import apprise

        client = self._client()
        notify_type = {
            AlertEvent.DOWN: apprise.NotifyType.FAILURE,
            AlertEvent.REMINDER: apprise.NotifyType.WARNING,
            AlertEvent.RECOVERED: apprise.NotifyType.SUCCESS,
            AlertEvent.TEST: apprise.NotifyType.INFO,
        }[alert.event]
        delivered = await client.async_notify(
            body=alert.text, title=alert.title, notify_type=notify_type
        )
        if not delivered:
            schemes = ", ".join(_scheme(url) for url in self.options.urls)
            raise RuntimeError(f"Apprise could not deliver to every URL ({schemes})")

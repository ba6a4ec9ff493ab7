"""``apprise``: hand each alert to the Apprise library, which speaks to about a
hundred services (Slack, Discord, Microsoft Teams, Telegram, ntfy, Gotify,
Matrix, PagerDuty, e-mail, ...) by URL: ``slack://...``, ``ntfys://...``,
``mailto://...``. See https://github.com/caronc/apprise/wiki for the URLs.

Install with ``pip install 'runner-daemon[apprise]'``. Each URL is checked
with Apprise when the config is read (``runner check``, start, reload): one
it cannot parse is a config error, not a silence at the first alert. A
daemon without an apprise notifier never imports Apprise.

URLs usually carry tokens: put them in the environment
(``${SLACK_APPRISE_URL}``). Errors name a URL by its scheme only, and what
Apprise says (it logs why a URL or a delivery failed; that is captured through
its public ``LogCapture``) is shown with the URL's parts masked.
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field

from runner.notifier import Alert, AlertEvent, Notifier, NotifyContext
from runner.plugin import Options

__all__ = ["AppriseNotifier", "AppriseOptions"]

INSTALL_HINT = "the apprise notifier needs Apprise: pip install 'runner-daemon[apprise]'"
#: Apprise's log lines worth repeating: why a URL or a delivery failed.
_LEVELS = ("WARNING", "ERROR", "CRITICAL")


def _import_apprise() -> Any:
    """The apprise module; ImportError when it is not installed."""
    import apprise

    return apprise


@contextmanager
def _loading() -> Iterator[None]:
    """Around a first use of Apprise, which loads its service plugins then:
    one of them imports imghdr (for PGPy), deprecated since Python 3.11. Not
    ours to fix, and not worth a warning in ``runner check``. (Synchronous
    code only: the filter is process-wide while it lasts.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _scheme(url: str) -> str:
    return url.partition("://")[0] + "://..." if "://" in url else "(not a URL)"


def _masked(text: str, url: str) -> str:
    """``text`` with ``url``, and each part of it that could be a token, masked.

    Host names (with a dot) stay: "connection refused by 127.0.0.1" says
    something; user names, passwords, tokens and path parts do not stay.
    """
    text = text.replace(url, _scheme(url))
    rest = url.partition("://")[2]
    parts = {p for p in re.split(r"[/:@?&=#,+]+", rest) if len(p) >= 3 and "." not in p}
    for part in sorted(parts, key=len, reverse=True):
        # Whole words only: a path "con" leaves "connection" alone.
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(part)}(?![A-Za-z0-9])", "***", text)
    return text


def _clause(line: str) -> str:
    """Apprise's sentence without its full stop (an ellipsis stays), to join with "; "."""
    return line[:-1] if line.endswith(".") and not line.endswith("..") else line


@contextmanager
def _apprise_says() -> Iterator[list[str]]:
    """Apprise's warnings and errors logged inside the block (its public
    ``LogCapture``), one string each, filled in when the block ends."""
    capture: Any = _import_apprise().LogCapture  # untyped in some Apprise releases
    lines: list[str] = []
    with capture(fmt="%(levelname)s %(message)s") as captured:
        try:
            yield lines
        finally:
            for line in captured.getvalue().splitlines():
                level, _, message = line.partition(" ")
                if level in _LEVELS and message.strip():
                    lines.append(message.strip())


def _schemes(apprise: Any) -> set[str]:
    """Every scheme an installed Apprise service answers to."""
    found: set[str] = set()
    for service in apprise.Apprise().details().get("schemas", ()):
        for key in ("protocols", "secure_protocols"):
            value = service.get(key) or ()
            found.update([value] if isinstance(value, str) else value)
    return found


def _parseable(url: str) -> str:
    """``url`` if Apprise can use it; else why not (a ValueError: a config problem)."""
    try:
        apprise = _import_apprise()
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    with _loading(), _apprise_says() as said:
        plugin = apprise.Apprise.instantiate(url)
    if plugin is not None:
        return url
    if "://" not in url:
        raise ValueError("not an Apprise URL: expected SCHEME://... (such as json://host/path)")
    scheme = url.partition("://")[0]
    with _loading():
        known = _schemes(apprise)
    if scheme.lower() not in known:
        close = difflib.get_close_matches(scheme.lower(), sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}://?" if close else ""
        raise ValueError(f"no Apprise service takes {scheme}:// URLs{hint}")
    reason = "; ".join(_clause(_masked(line, url)) for line in said)
    raise ValueError(
        f"this {scheme}:// URL cannot be parsed by Apprise" + (f": {reason}" if reason else "")
    )


class AppriseOptions(Options):
    # Apprise URLs carry tokens: keep them out of validation errors.
    model_config = ConfigDict(hide_input_in_errors=True)

    urls: list[Annotated[str, AfterValidator(_parseable)]] = Field(
        min_length=1, description="Apprise URLs: where to send each alert."
    )


class AppriseNotifier(Notifier[AppriseOptions]):
    """Sends each alert through Apprise to any of ~100 services, by URL."""

    Options = AppriseOptions

    def __init__(self, options: AppriseOptions) -> None:
        super().__init__(options)
        self._apprise: Any = None

    def _client(self) -> Any:
        if self._apprise is None:
            try:
                apprise = _import_apprise()
            except ImportError as exc:
                raise RuntimeError(INSTALL_HINT) from exc
            client = apprise.Apprise()
            with _loading():
                for url in self.options.urls:
                    if not client.add(url):
                        raise ValueError(f"Apprise does not understand the URL {_scheme(url)}")
            self._apprise = client
        return self._apprise

    async def send(self, alert: Alert, ctx: NotifyContext) -> None:
        client = self._client()
        apprise = _import_apprise()
        notify_type = {
            AlertEvent.DOWN: apprise.NotifyType.FAILURE,
            AlertEvent.REMINDER: apprise.NotifyType.WARNING,
            AlertEvent.RECOVERED: apprise.NotifyType.SUCCESS,
            AlertEvent.TEST: apprise.NotifyType.INFO,
        }[alert.event]
        # The title is its own field: the body does not repeat it.
        with _apprise_says() as said:
            delivered = await client.async_notify(
                body=alert.body, title=alert.title, notify_type=notify_type
            )
        if not delivered:
            schemes = ", ".join(_scheme(url) for url in self.options.urls)
            reasons = [_clause(line) for line in dict.fromkeys(said)]  # once each
            for url in self.options.urls:
                reasons = [_masked(reason, url) for reason in reasons]
            cause = f": {'; '.join(reasons)}" if reasons else " (Apprise said no more)"
            raise RuntimeError(f"Apprise could not deliver to every URL ({schemes}){cause}")

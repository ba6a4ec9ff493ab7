"""``webhook``: POST each alert as JSON to a URL.

The body is :meth:`runner.notifier.Alert.to_json` (fields ``job``,
``plugin``, ``event``, ``since``, ``last``, ``consecutive``,
``status_page``, ``title``, ``text``). A 2xx answer is a delivery; anything
else, or no answer within ``timeout``, is retried up to ``retries`` times
after an exponential back-off with full jitter (``retry_delay``, doubled
each time, a random share of it), so a fleet of daemons does not retry in
step. With ``secret`` set, ``X-Runner-Signature: sha256=<hex>`` carries the
HMAC-SHA256 of the exact body, so the receiver can check the sender.

Header values and the secret are never logged or put in an error; errors
name the URL without its query string or user info (webhook URLs often carry
a token there).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import AnyHttpUrl, ConfigDict, Field

from runner import __version__
from runner.durations import Duration
from runner.notifier import Alert, Notifier, NotifyContext
from runner.plugin import Options

__all__ = ["Webhook", "WebhookOptions"]

SIGNATURE_HEADER = "X-Runner-Signature"


class WebhookOptions(Options):
    # Header values and the secret are secrets: keep them out of error messages.
    model_config = ConfigDict(hide_input_in_errors=True)

    url: AnyHttpUrl = Field(description="Where to POST the alert.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description='Extra request headers, e.g. {Authorization: "Bearer ${HOOK_TOKEN}"}.',
    )
    timeout: Duration = Field(10.0, description="How long one attempt may take.")
    retries: int = Field(3, ge=0, le=10, description="Attempts after the first one fails.")
    retry_delay: Duration = Field(
        1.0, description="Back-off before the first retry; doubled for each next one, jittered."
    )
    secret: str | None = Field(
        None, description="Sign each body with HMAC-SHA256 in the X-Runner-Signature header."
    )
    verify_tls: bool = Field(True, description="Verify the receiver's TLS certificate.")


def _public(url: str) -> str:
    """The URL without user info, query or fragment: safe to log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class Webhook(Notifier[WebhookOptions]):
    """POSTs each alert as JSON to a URL, with retries and an optional HMAC signature."""

    Options = WebhookOptions

    async def send(self, alert: Alert, ctx: NotifyContext) -> None:
        options = self.options
        client = await ctx.shared(("webhook.client", options.verify_tls), self._client)
        body = json.dumps(alert.to_json(), separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"runner/{__version__}",
            **options.headers,
        }
        if options.secret is not None:
            digest = hmac.new(options.secret.encode(), body, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={digest}"
        url = str(options.url)
        problem = ""
        for attempt in range(options.retries + 1):
            if attempt:
                await asyncio.sleep(random.uniform(0, options.retry_delay * 2 ** (attempt - 1)))
            try:
                response = await client.post(
                    url, content=body, headers=headers, timeout=options.timeout
                )
            except httpx.TimeoutException:
                problem = f"no answer within {options.timeout:g}s"
                continue
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            if response.is_success:
                return
            problem = f"answered {response.status_code}"
        raise RuntimeError(
            f"POST {_public(url)} failed after {options.retries + 1} attempt(s): {problem}"
        )

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        # One client per daemon (a TLS context costs far more than a POST);
        # no proxy or .netrc from the environment.
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context() if self.options.verify_tls else False
        )
        async with httpx.AsyncClient(verify=verify, trust_env=False) as client:
            yield client

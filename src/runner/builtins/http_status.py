"""``http-status``: request a URL and check the status code of the answer.

Choices, and why:

* **One client per daemon, a fresh connection per run.** Building an
  ``httpx.AsyncClient`` builds a TLS context, which costs about 20 times the
  request itself, so the client is a shared resource (``ctx.shared``) keyed
  by the one setting that changes it, ``verify_tls``. Its pool keeps no idle
  connection (``max_keepalive_connections=0``): a run that reused a kept-alive
  socket would pass while the listener behind it is dead, and fresh
  connections are cheaper than httpcore's pool checks anyway (FIELD-NOTES).
  (httpcore 1.0 also drops a connection whose body was left unread, as here;
  the limit keeps that true if it ever starts draining small bodies.)
* **The job's timeout is the only clock.** The client has no timeouts of its
  own; the daemon cancels the run at the job's timeout and reports
  ``timeout``. An httpx timeout of the same length would race the daemon's
  and turn some timeouts into ``error`` results; a shorter one would cut a
  run the user allowed to take longer.
* **The body is never read.** Each response is opened as a stream and closed
  once its status line and headers are in, so a check of a huge download
  costs one round trip, not the download.
* **Redirects are followed here, not by httpx**, because httpx reads the body
  of every redirect response it follows. Cookies set along the chain are
  carried to its next hop and then dropped: the shared client keeps no
  cookies, so one run (or one job) never sends another's session.
* **The environment is ignored** (``trust_env=False``): no proxy from
  ``HTTP_PROXY``, no credentials from ``~/.netrc``. A check measures the
  target, not a proxy in front of it. Certificates are verified against the
  system's store (``ssl.create_default_context()``, which honours
  ``SSL_CERT_FILE``), so a CA installed on the host is trusted.
* **Secrets stay out of results.** Header values are sent but never logged,
  repr'd or put in a result, and an invalid one is rejected without echoing
  it; the ``url`` field has any ``user:password@`` removed.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import ssl
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Literal

import httpx
from pydantic import AnyHttpUrl, ConfigDict, Field, field_validator

from runner.plugin import Check, Options, Result, RunContext

__all__ = ["HttpStatus", "HttpStatusOptions"]

#: Hops followed before the run fails as a redirect loop (httpx's own default).
MAX_REDIRECTS = 20

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]
StatusCode = Annotated[int, Field(ge=100, le=599)]

# RFC 9110: a field name is a token; a value is visible ASCII, space and tab.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")


class HttpStatusOptions(Options):
    """Options of the ``http-status`` check."""

    # Header values are often secrets (tokens, cookies): keep them out of
    # validation error messages and out of the model's repr.
    model_config = ConfigDict(hide_input_in_errors=True)

    url: AnyHttpUrl = Field(description="The http:// or https:// URL to request.")
    method: Method = Field(
        "GET", description="The HTTP method (GET, HEAD, POST, ...); case does not matter."
    )
    expect_status: list[StatusCode] | None = Field(
        None,
        min_length=1,
        description="Status codes that count as ok; by default any 2xx or 3xx.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description="Extra request headers. Their values are never logged or reported.",
    )
    follow_redirects: bool = Field(
        True,
        description=f"Follow up to {MAX_REDIRECTS} redirects and check the final answer.",
    )
    verify_tls: bool = Field(
        True, description="Verify the server's certificate against the system's CA store."
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if not _FIELD_VALUE.fullmatch(value):
                # Name the header, never the value.
                raise ValueError(
                    f"the value of header {name!r} must be printable ASCII without line breaks"
                )
        return headers


class HttpStatus(Check[HttpStatusOptions]):
    """Requests a URL and checks the status code of the answer."""

    Options = HttpStatusOptions

    async def run(self, ctx: RunContext) -> Result:
        opts = self.options
        verify_tls = opts.verify_tls
        client = await ctx.shared(
            ("http-status.client", verify_tls),
            lambda: _new_client(verify_tls),
            usable=lambda c: not c.is_closed,
        )
        request = client.build_request(opts.method, str(opts.url), headers=opts.headers)
        cookies = httpx.Cookies()  # this run's redirect chain only
        redirects = 0
        try:
            while True:
                response = await client.send(request, stream=True, follow_redirects=False)
                # Closing without reading drops the body and, with no
                # keep-alive, the connection.
                await response.aclose()
                next_request = response.next_request
                if not opts.follow_redirects or next_request is None:
                    break
                if redirects == MAX_REDIRECTS:
                    return Result.fail(
                        f"more than {MAX_REDIRECTS} redirects",
                        status_code=response.status_code,
                        url=_public_url(response.url),
                        redirects=redirects,
                    )
                cookies.extract_cookies(response)
                cookies.set_cookie_header(next_request)
                request = next_request
                redirects += 1
        except httpx.HTTPError as exc:
            return Result.error(
                _describe(exc),
                error_type=type(exc).__name__,
                url=_public_url(request.url),  # the hop that failed
                redirects=redirects,
            )

        status = response.status_code
        fields = {"status_code": status, "url": _public_url(response.url), "redirects": redirects}
        if opts.expect_status is None:
            if 200 <= status < 400:
                return Result.ok(f"status {status}", **fields)
            return Result.fail(f"status {status}, expected 2xx/3xx", **fields)
        if status in opts.expect_status:
            return Result.ok(f"status {status}", **fields)
        expected = ", ".join(str(code) for code in opts.expect_status)
        if len(opts.expect_status) > 1:
            expected = f"one of {expected}"
        return Result.fail(f"status {status}, expected {expected}", **fields)


def _new_client(verify_tls: bool) -> httpx.AsyncClient:
    """The shared client: no keep-alive, no timeouts, no cookie store, no environment."""
    verify: ssl.SSLContext | bool = ssl.create_default_context() if verify_tls else False
    no_cookies = http.cookiejar.CookieJar(
        policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
    )
    return httpx.AsyncClient(
        verify=verify,
        # No idle connections kept: every run dials. No cap on open ones
        # either: a queued run would be timed as a slow target; the
        # scheduler bounds concurrency.
        limits=httpx.Limits(max_keepalive_connections=0, max_connections=None),
        timeout=None,  # the daemon cancels the run at the job's timeout
        trust_env=False,
        cookies=no_cookies,
        headers={"User-Agent": f"runner/{_runner_version()} (http-status)"},
    )


def _runner_version() -> str:
    try:
        return version("runner")
    except PackageNotFoundError:
        return "dev"


def _public_url(url: httpx.URL) -> str:
    """The URL without ``user:password@``, fit for a result."""
    return str(url.copy_with(userinfo=b"")) if url.userinfo else str(url)


def _describe(exc: httpx.HTTPError) -> str:
    """A short message for a failed request, from the root cause when there is one."""
    what = "cannot connect" if isinstance(exc, httpx.ConnectError) else "request failed"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"{what}: TLS certificate not trusted: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"{what}: TLS error: {cause.reason or cause}"
        if isinstance(cause, socket.gaierror):
            return f"{what}: cannot resolve host: {cause.strerror or cause}"
        if isinstance(cause, OSError) and cause.errno:
            return f"{what}: {os.strerror(cause.errno)}"
        cause = cause.__cause__ or cause.__context__
    return f"{what}: {str(exc).strip() or type(exc).__name__}"

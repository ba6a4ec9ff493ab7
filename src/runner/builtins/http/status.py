"""``http-status``: request a URL and check the answer: status, body, headers, timings.

Choices, and why:

* **One client per daemon, a fresh connection per run.** Building an
  ``httpx.AsyncClient`` builds a TLS context, which costs about 20 times the
  request itself, so the client is a shared resource (``ctx.shared``) keyed
  by the one setting that changes it, ``verify_tls``. Its transport has no
  pool: each request dials, and its connection is closed with its answer
  (``http_probe.FreshConnections``). A run that reused a kept-alive socket
  would pass while the listener behind it is dead.
* **Cheap per run.** Each hop goes straight to the transport
  (``_Client.send_hop``), skipping what ``client.send`` wraps around every
  request and a check does not use, and the client keeps no cookie store to
  ask; the job's URL and merged headers are built once. With the pool and
  anyio gone too, a check of a local page costs less CPU than raw httpx at
  the same settings and than blackbox_exporter (bench/README.md).
* **The job's timeout is the only clock.** The client has no timeouts of its
  own; the daemon cancels the run at the job's timeout and reports
  ``timeout``. An httpx timeout of the same length would race the daemon's
  and turn some timeouts into ``error`` results; a shorter one would cut a
  run the user allowed to take longer. So a body trickling in byte by byte
  ends as that ``timeout``.
* **The body is read, within a budget.** An answer whose body breaks off
  (a reset, fewer bytes than its Content-Length, bad chunking) is not a
  service that is up, so the final answer's body is read, as blackbox_exporter
  and curl do, up to ``max_body_bytes`` (1 MiB; ``0`` reads none): a body
  that goes on past it is fine and is not read further, so checking a huge
  download costs a megabyte, not the download. The bytes are counted and
  dropped, unless ``expect_body``/``expect_json`` need them, and then at
  most ``max_body_bytes`` are held. Decoding is ours and bounded by the same
  budget (``http_body``). Redirect bodies are never read.
* **Each phase is timed, on the name from the URL.** The shared client's
  transport resolves the name itself, so ``dns`` and the
  address used (``ip``) are known, while the URL, the Host header and SNI
  keep the name (``http_probe``). httpcore's ``trace`` extension times the
  rest; the hops of a redirect chain add up.
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
  it; the ``url`` field has any ``user:password@`` removed. What the server
  sent is quoted in messages only cut short, and a ``Set-Cookie`` value never.
* **Messages name what broke.** h11's errors (``illegal status line:
  bytearray(b'...')``) are turned into words a person can act on: not an HTTP
  response, an invalid status line as text, headers past httpcore's limit,
  a redirect to an invalid URL, and on which hop of a redirect chain.
"""

from __future__ import annotations

import http.cookiejar
import re
import ssl
import time
from typing import Annotated, Any, Literal

import httpx
from pydantic import AnyHttpUrl, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator

import runner
from runner.builtins._compat import MAX_HEADER_BYTES, build_redirect_request
from runner.builtins._regex import compile_regex
from runner.builtins.http.assertions import (
    ExpectBody,
    ExpectJson,
    body_failures,
    clip,
    header_failures,
    json_failures,
)
from runner.builtins.http.body import DECODED_ENCODINGS, Body, BodyError, read_body, readable_text
from runner.builtins.http.probe import PHASES, IpVersion, Probe, ProbingTransport
from runner.durations import format_duration
from runner.plugin import (
    UNRESOLVED_HOST,
    Check,
    Duration,
    Options,
    Result,
    ResultMetric,
    RunContext,
    describe_error,
)

__all__ = ["HttpStatus", "HttpStatusOptions"]

#: Hops followed before the run fails as a redirect loop (httpx's own default).
MAX_REDIRECTS = 20

#: Bytes of a body read by default (``max_body_bytes``).
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

#: An HTTP/1.x status line as h11 accepts it (RFC 9112 4; the reason phrase optional).
_STATUS_LINE = re.compile(rb"HTTP/[0-9]\.[0-9] [0-9]{3}(?: [\t\x20-\x7e\x80-\xff]*)?")

#: Statuses whose answer must say where to go (RFC 9110 15.4).
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

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
    max_body_bytes: int = Field(
        DEFAULT_MAX_BODY_BYTES,
        ge=0,
        description="Read the final answer's body up to this many bytes (decoded) and make "
        "a transfer that breaks within them an error; a longer body is ok and not read "
        "further. 0: do not read the body.",
    )
    expect_body: ExpectBody | None = Field(
        None,
        description="What the body's text must contain (contains), must not contain "
        "(not_contains) or match (regex). Only the first max_body_bytes are searched.",
    )
    expect_json: list[ExpectJson] | None = Field(
        None,
        min_length=1,
        description="Tests of the JSON body: each a JMESPath (path) and one of equals, "
        "contains, exists, regex, less_than, greater_than.",
    )
    expect_headers: dict[str, str] | None = Field(
        None,
        description="Response headers that must be present and match a regular expression "
        "(name: regex); several values of one header are joined with ', '.",
    )
    max_response_time: Duration | None = Field(
        None,
        description="Fail when the request (all phases of all hops) takes longer, naming "
        "the slowest phase.",
    )
    min_cert_days: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="https: fail when the certificate chain's earliest expiry is fewer days away.",
    )
    ip_version: IpVersion = Field(
        "any",
        description="Connect over IPv4 (4), IPv6 (6), or whichever the resolver lists first (any).",
    )

    _expect_headers: dict[str, re.Pattern[str]] = PrivateAttr(default_factory=dict)

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("ip_version", mode="before")
    @classmethod
    def _ip_version_number(cls, value: object) -> object:
        return int(value) if isinstance(value, str) and value in ("4", "6") else value

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

    @field_validator("expect_body", "expect_json")
    @classmethod
    def _needs_the_body(cls, value: object, info: ValidationInfo) -> object:
        if value is not None and info.data.get("max_body_bytes") == 0:
            raise ValueError(
                f"{info.field_name} needs the body, but max_body_bytes is 0; "
                "remove max_body_bytes or raise it"
            )
        return value

    @field_validator("expect_headers")
    @classmethod
    def _check_expect_headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name, pattern in (value or {}).items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
            compile_regex(pattern)
        return value

    def model_post_init(self, context: Any, /) -> None:
        self._expect_headers = {
            name: compile_regex(pattern) for name, pattern in (self.expect_headers or {}).items()
        }


class HttpStatus(Check[HttpStatusOptions]):
    """Requests a URL and checks the answer: status, body, headers, time and certificate."""

    Options = HttpStatusOptions
    result_metrics = (
        ResultMetric(
            "status_code", "http_status_code", "Status code of the last answer (http-status checks)"
        ),
    )

    @classmethod
    def target_host(cls, options: HttpStatusOptions) -> str | None:
        return options.url.host

    def __init__(self, options: HttpStatusOptions) -> None:
        super().__init__(options)
        # Parsed once: httpx would parse the URL string again on every run.
        self._url = httpx.URL(str(options.url))
        # The client's headers merged with the job's, once per client.
        self._headers: tuple[_Client, httpx.Headers] | None = None

    async def run(self, ctx: RunContext) -> Result:
        verify_tls = self.options.verify_tls
        client = await ctx.shared(
            ("http-status.client", verify_tls),
            lambda: _new_client(verify_tls),
            usable=lambda c: not c.is_closed,
        )
        probe = Probe(self.options.ip_version)
        with probe.active():
            return await self._exchange(client, probe)

    async def _exchange(self, client: _Client, probe: Probe) -> Result:
        """Send the request, follow redirects, read the final body, judge the answer."""
        opts = self.options
        if self._headers is None or self._headers[0] is not client:
            self._headers = (client, client.merged_headers(opts.headers))
        request = httpx.Request(
            opts.method, self._url, headers=self._headers[1], extensions={"trace": probe.trace}
        )
        cookies = httpx.Cookies()  # this run's redirect chain only
        redirects = 0
        body: Body | None = None
        while True:
            probe.new_hop()
            try:
                response = await client.send_hop(request)
            except httpx.HTTPError as exc:
                probe.end_transfer()
                return _send_failed(exc, request, redirects, probe)
            problem: str | None = None  # a wrong answer: fail
            broken: BodyError | None = None  # a body that broke: error
            try:
                if response.url.scheme == "https":
                    stream = response.extensions.get("network_stream")
                    probe.seen_certificate(stream.get_extra_info("ssl_object") if stream else None)
                if response.status_code in REDIRECT_STATUSES and "location" not in response.headers:
                    problem = "redirect without a Location header"
                elif opts.follow_redirects and (next_request := response.next_request) is not None:
                    if redirects == MAX_REDIRECTS:
                        problem = f"more than {MAX_REDIRECTS} redirects"
                    else:
                        cookies.extract_cookies(response)
                        cookies.set_cookie_header(next_request)
                        request = next_request
                        redirects += 1
                        continue  # closes this answer, unread, on the way
                elif opts.max_body_bytes > 0:
                    body = await read_body(
                        response,
                        opts.max_body_bytes,
                        keep=opts.expect_body is not None or opts.expect_json is not None,
                    )
            except BodyError as exc:
                broken = exc
            finally:
                # Closed before the result is made, so its timings include the close.
                await response.aclose()
                probe.end_transfer()
            if broken is not None:
                fields = _fields(response.status_code, response.url, redirects, probe)
                message = _on_hop(str(broken), response.url, redirects)
                return Result.error(message, error_type=broken.error_type, **fields)
            if problem is not None:
                fields = _fields(response.status_code, response.url, redirects, probe)
                return Result.fail(problem, **fields)
            return self._judge(response, body, redirects, probe)

    def _judge(
        self, response: httpx.Response, body: Body | None, redirects: int, probe: Probe
    ) -> Result:
        """The result for a final answer that was received whole (or as far as read)."""
        opts = self.options
        status = response.status_code
        fields = _fields(status, response.url, redirects, probe)
        if body is not None:
            fields["body_bytes"] = body.size
            fields["body_complete"] = body.complete

        failures = []
        if opts.expect_status is None:
            if not 200 <= status < 400:
                failures.append(f"status {status}, expected 2xx/3xx")
        elif status not in opts.expect_status:
            expected = ", ".join(str(code) for code in opts.expect_status)
            if len(opts.expect_status) > 1:
                expected = f"one of {expected}"
            failures.append(f"status {status}, expected {expected}")

        failures += header_failures(opts._expect_headers, response.headers)

        if body is not None and (opts.expect_body or opts.expect_json):
            if body.encoding is not None:
                return Result.error(
                    f"cannot check the body: it is encoded with {body.encoding!r}, and runner "
                    f"decodes one layer of {' or '.join(DECODED_ENCODINGS)}; drop "
                    "Accept-Encoding from headers",
                    error_type="DecodingError",
                    **fields,
                )
            content = body.content or b""
            if opts.expect_body:
                failures += body_failures(
                    opts.expect_body,
                    content,
                    complete=body.complete,
                    charset=response.charset_encoding,
                )
            if opts.expect_json:
                failures += json_failures(
                    opts.expect_json, content, complete=body.complete, limit=opts.max_body_bytes
                )

        if opts.max_response_time is not None and probe.total() > opts.max_response_time:
            slowest = max(PHASES, key=lambda phase: probe.phases[phase])
            failures.append(
                f"response time: expected at most {format_duration(opts.max_response_time)}, "
                f"took {_seconds(probe.total())} (slowest phase: {slowest} "
                f"{_seconds(probe.phases[slowest])})"
            )

        if opts.min_cert_days is not None:
            days = fields.get("cert_expires_in_days")
            if days is None:
                failures.append(
                    f"certificate: expected at least {opts.min_cert_days:g} days left, but no "
                    "TLS connection was made"
                )
            elif days < opts.min_cert_days:
                failures.append(
                    f"certificate: expected at least {opts.min_cert_days:g} days left "
                    f"(min_cert_days), expires in {days:.1f} days"
                )

        if failures:
            return Result.fail("; ".join(failures), **fields)
        return Result.ok(f"status {status}", **fields)


def _fields(status: int | None, url: httpx.URL, redirects: int, probe: Probe) -> dict[str, Any]:
    """The result fields every answer gets."""
    fields: dict[str, Any] = {}
    if status is not None:
        fields["status_code"] = status
    fields["url"] = _public_url(url)
    if status is not None or redirects:  # no hop answered: nothing was redirected
        fields["redirects"] = redirects
    if probe.ip is not None:
        fields["ip"] = probe.ip
    fields["timings_ms"] = probe.timings_ms()
    if probe.cert_expiry is not None:
        fields["cert_expires_in_days"] = round((probe.cert_expiry - time.time()) / 86400, 1)
    if probe.unresolved is not None:
        fields[UNRESOLVED_HOST] = probe.unresolved
    return fields


def _send_failed(
    exc: httpx.HTTPError, request: httpx.Request, redirects: int, probe: Probe
) -> Result:
    """The result for a request that got no usable answer (status line and headers)."""
    if isinstance(exc, _BadLocation):
        fields = _fields(exc.status, request.url, redirects, probe)
        message = f"redirect to an invalid URL: {exc.reason}: {clip(exc.location)}"
        return Result.fail(_on_hop(message, request.url, redirects), **fields)
    fields = _fields(None, request.url, redirects, probe)
    return Result.error(
        _on_hop(_describe(exc, probe), request.url, redirects),
        error_type=type(exc).__name__,
        **fields,
    )


def _on_hop(message: str, url: httpx.URL, redirects: int) -> str:
    """``message``, saying which hop it was about when it was not the first."""
    if not redirects:
        return message
    hops = "1 redirect" if redirects == 1 else f"{redirects} redirects"
    return f"after {hops}, {_public_url(url)}: {message}"


class _BadLocation(httpx.RemoteProtocolError):
    """A redirect whose Location is not a URL httpx can follow."""

    def __init__(self, response: httpx.Response, cause: httpx.HTTPError) -> None:
        super().__init__(str(cause))
        self.status = response.status_code
        self.location = response.headers.get("location", "")
        self.reason = _bad_url_reason(self.location, cause)


def _bad_url_reason(location: str, exc: Exception) -> str:
    authority = location.split("://", 1)[-1].split("/", 1)[0]
    if "[" in authority and "]" not in authority:
        return "missing ']' after the IPv6 address"
    try:
        httpx.URL(location)
    except httpx.InvalidURL as invalid:  # httpx's own words for what is wrong with it
        return str(invalid).rstrip(".")
    return str(exc).rstrip(".")


class _NoCookies(httpx.Cookies):
    """A cookie store that keeps none.

    Its jar refuses every cookie, and it does not even ask the jar: httpx's
    ``extract_cookies`` wraps each answer in ``email.message`` objects for
    ``http.cookiejar`` first, a tenth of a check's CPU for nothing.
    """

    def __init__(self) -> None:
        super().__init__(
            http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        )

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class _Client(httpx.AsyncClient):
    """httpx's client, sending one hop at a time straight to its transport.

    ``send_hop`` is what ``send(request, stream=True, follow_redirects=False)``
    does, without what a check does not use and pays for on every run: auth
    and event-hook wrappers, the response timer, the log line (silenced) and
    the cookie store (this client keeps none: :class:`_NoCookies`).
    """

    def __init__(self, *, transport: httpx.AsyncBaseTransport, **kwargs: Any) -> None:
        super().__init__(transport=transport, **kwargs)
        self._hop_transport = transport
        self._no_cookies = _NoCookies()

    def merged_headers(self, headers: dict[str, str]) -> httpx.Headers:
        """The client's default headers updated with ``headers``."""
        merged = httpx.Headers(self.headers)
        merged.update(headers)
        return merged

    async def send_hop(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return the answer with its body unread; a redirect
        answer's ``next_request`` is set (the redirect is not followed).

        Raises:
            httpx.HTTPError: no answer, or (:class:`_BadLocation`) a redirect to
                an invalid URL.
        """
        url = request.url
        if url.username or url.password:  # as httpx's send: credentials of the URL as Basic auth
            next(httpx.BasicAuth(url.username, url.password).sync_auth_flow(request))
        response = await self._hop_transport.handle_async_request(request)
        response.request = request
        if response.has_redirect_location:
            try:
                response.next_request = build_redirect_request(self, request, response)
            except httpx.HTTPError as exc:
                await response.aclose()
                raise _BadLocation(response, exc) from exc
            except BaseException:
                await response.aclose()
                raise
        return response

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise AttributeError("the http-status client keeps no cookies")


def _new_client(verify_tls: bool) -> _Client:
    """The shared client: no keep-alive, no timeouts, no cookie store, no environment.
    Its TLS context is built when the first https request needs it."""

    def tls_context() -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    return _Client(
        transport=ProbingTransport(tls_context),
        timeout=None,  # the daemon cancels the run at the job's timeout
        trust_env=False,
        headers={
            "User-Agent": f"runner/{runner.__version__} (http-status)",
            # Only what http_body decodes within its budget (httpx would add
            # br and zstd when their libraries are installed).
            "Accept-Encoding": ", ".join(DECODED_ENCODINGS),
        },
    )


def _public_url(url: httpx.URL) -> str:
    """The URL without ``user:password@``, fit for a result."""
    return str(url.copy_with(userinfo=b"")) if url.userinfo else str(url)


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


def _describe(exc: httpx.HTTPError, probe: Probe) -> str:
    """A short message for a failed request, from the root cause when there is one."""
    if isinstance(exc, httpx.RemoteProtocolError):
        return _protocol_error(exc, probe)
    what = "cannot connect" if isinstance(exc, httpx.ConnectError) else "request failed"
    return f"{what}: {readable_text(describe_error(exc))}"


def _protocol_error(exc: httpx.RemoteProtocolError, probe: Probe) -> str:
    """What was wrong with an answer that broke HTTP before its headers were in."""
    head = bytes(probe.head)
    if MAX_HEADER_BYTES is not None and probe.received >= MAX_HEADER_BYTES:
        return f"response headers larger than {MAX_HEADER_BYTES // 1024} KiB"
    if not head:
        return "the server closed the connection without answering"
    if not head.startswith(b"HTTP/"):
        if head[:1] in (b"\x15", b"\x16") and head[1:2] == b"\x03":  # a TLS alert or handshake
            return "not an HTTP response: the server answered in TLS; use https://"
        shown = clip(head.decode("utf-8", errors="replace"))
        return f"not an HTTP response: {shown} (an HTTP/0.9 reply, or another protocol)"
    first_line, complete = head.split(b"\n", 1)[0], b"\n" in head
    first_line = first_line.removesuffix(b"\r")
    if complete and not _STATUS_LINE.fullmatch(first_line):
        return f"invalid status line: {clip(first_line.decode('utf-8', errors='replace'))}"
    return f"invalid HTTP response: {readable_text(str(exc))}"

"""The http-status check against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest
from pydantic import ValidationError

from helpers import closed_port, run_cli
from hostile_http import HostileServer, read_request_head
from runner.builtins.http.probe import PHASES
from runner.builtins.http.status import (
    MAX_HEADER_BYTES,
    MAX_REDIRECTS,
    HttpStatus,
    HttpStatusOptions,
)
from runner.plugin import Status
from runner.resources import Resources
from runner.testing import run_check

SECRET = "s3cret-token-value"
MIB = 1024 * 1024

_REASONS = {200: "OK", 302: "Found", 403: "Forbidden", 500: "Internal Server Error"}


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class HttpTarget:
    """A tiny keep-alive HTTP/1.1 server that records what it receives.

    It keeps connections open between requests, so a client that reused one
    would show up as fewer ``connections`` than requests.
    """

    ssl_context: ssl.SSLContext | None = None
    connections: int = 0
    requests: list[Request] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)
    server: asyncio.Server | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ssl_context)

    async def stop(self) -> None:
        self.release.set()  # lets the slow handlers finish
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        await asyncio.gather(*self.handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        self.connections += 1
        try:
            while request := await self._read_request(reader):
                self.requests.append(request)
                await self._respond(request, writer)
        except (ConnectionError, ssl.SSLError):
            pass  # the client hung up mid-answer, as it should on /big
        finally:
            writer.close()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> Request | None:
        head = await read_request_head(reader)
        return None if head is None else Request(*head)

    async def _respond(self, request: Request, writer: asyncio.StreamWriter) -> None:
        def answer(status: int, *headers: str, body: bytes = b"") -> None:
            lines = [f"HTTP/1.1 {status} {_REASONS[status]}", *headers]
            lines.append(f"Content-Length: {len(body)}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
            if request.method != "HEAD":
                writer.write(body)

        match request.path:
            case "/ok":
                answer(200, body=b"ok")
            case "/error":
                answer(500, body=b"boom")
            case "/redirect":
                answer(302, "Location: /ok")
            case "/loop":
                answer(302, "Location: /loop")
            case "/set-cookie":
                answer(302, "Location: /needs-cookie", "Set-Cookie: session=abc; Path=/")
            case "/needs-cookie":
                answer(200 if "session=abc" in request.headers.get("cookie", "") else 403)
            case "/slow":
                await self.release.wait()
                answer(200)
            case "/big":
                # Promises a gigabyte and sends a little: a client that reads
                # the body waits here until the run times out.
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
                writer.write(b"x" * 65536)
                await writer.drain()
                await self.release.wait()
            case _:
                answer(403)
        await writer.drain()


@pytest.fixture
async def start_target() -> AsyncIterator[Callable[..., Awaitable[HttpTarget]]]:
    """Starts HTTP targets and stops them after the test."""
    targets: list[HttpTarget] = []

    async def start(ssl_context: ssl.SSLContext | None = None) -> HttpTarget:
        target = HttpTarget(ssl_context=ssl_context)
        await target.start()
        targets.append(target)
        return target

    yield start
    for target in targets:
        await target.stop()


@pytest.fixture
async def target(start_target: Callable[..., Awaitable[HttpTarget]]) -> HttpTarget:
    return await start_target()


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    res = Resources()
    yield res
    await res.aclose()


async def test_200_is_ok(target: HttpTarget) -> None:
    result = await run_check(HttpStatus, {"url": target.url("/ok")})
    assert result.status is Status.OK
    assert result.fields["status_code"] == 200
    assert result.fields["url"] == target.url("/ok")
    assert result.fields["redirects"] == 0


async def test_500_fails_naming_the_status(target: HttpTarget) -> None:
    result = await run_check(HttpStatus, {"url": target.url("/error")})
    assert result.status is Status.FAIL
    assert result.fields["status_code"] == 500
    assert result.message == "status 500, expected 2xx/3xx"


@pytest.mark.parametrize(
    ("path", "expect", "status", "message"),
    [
        pytest.param("/error", [500], Status.OK, "status 500", id="500-expected"),
        pytest.param("/ok", [204], Status.FAIL, "status 200, expected 204", id="200-not-expected"),
        pytest.param(
            "/ok", [201, 204], Status.FAIL, "status 200, expected one of 201, 204", id="two-codes"
        ),
    ],
)
async def test_expect_status(
    target: HttpTarget, path: str, expect: list[int], status: Status, message: str
) -> None:
    result = await run_check(HttpStatus, {"url": target.url(path), "expect_status": expect})
    assert result.status is status
    assert result.message == message


async def test_redirect_is_followed_to_the_final_url(target: HttpTarget) -> None:
    result = await run_check(HttpStatus, {"url": target.url("/redirect")})
    assert result.status is Status.OK
    assert result.fields["status_code"] == 200
    assert result.fields["url"].endswith("/ok")
    assert result.fields["redirects"] == 1
    assert [r.path for r in target.requests] == ["/redirect", "/ok"]


async def test_redirect_not_followed_is_ok_as_3xx(target: HttpTarget) -> None:
    result = await run_check(
        HttpStatus, {"url": target.url("/redirect"), "follow_redirects": False}
    )
    assert result.status is Status.OK
    assert result.fields["status_code"] == 302
    assert result.fields["url"] == target.url("/redirect")
    assert result.fields["redirects"] == 0
    assert [r.path for r in target.requests] == ["/redirect"]


async def test_redirect_loop_fails(target: HttpTarget) -> None:
    result = await run_check(HttpStatus, {"url": target.url("/loop")})
    assert result.status is Status.FAIL
    assert result.message == f"more than {MAX_REDIRECTS} redirects"
    assert result.fields["redirects"] == MAX_REDIRECTS


async def test_cookies_follow_the_redirect_chain_but_not_the_next_run(
    target: HttpTarget, resources: Resources
) -> None:
    chained = await run_check(HttpStatus, {"url": target.url("/set-cookie")}, resources=resources)
    assert chained.status is Status.OK
    assert chained.fields["status_code"] == 200

    later = await run_check(HttpStatus, {"url": target.url("/needs-cookie")}, resources=resources)
    assert later.status is Status.FAIL
    assert later.fields["status_code"] == 403


async def test_slow_answer_times_out_at_the_job_timeout(target: HttpTarget) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await run_check(HttpStatus, {"url": target.url("/slow")}, timeout=0.5)
    elapsed = loop.time() - started
    assert result.status is Status.TIMEOUT
    assert result.message is not None and "0.5s" in result.message
    assert 0.4 < elapsed < 2.0


async def test_body_is_not_read_with_max_body_bytes_0(target: HttpTarget) -> None:
    # /big never finishes its body: reading it would end in a timeout.
    options = {"url": target.url("/big"), "max_body_bytes": 0}
    result = await run_check(HttpStatus, options, timeout=5)
    assert result.status is Status.OK
    assert result.fields["status_code"] == 200
    assert "body_bytes" not in result.fields


async def test_body_that_stalls_within_the_window_times_out(target: HttpTarget) -> None:
    # /big sends 64 KiB of a promised gigabyte, then nothing: within the 1 MiB read.
    result = await run_check(HttpStatus, {"url": target.url("/big")}, timeout=0.5)
    assert result.status is Status.TIMEOUT


async def test_closed_port_is_an_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ok"

    result = await run_check(HttpStatus, {"url": url})

    assert result.status is Status.ERROR
    assert result.fields["error_type"] == "ConnectError"
    assert result.message == "cannot connect: connection refused (nothing listens on that port?)"
    assert result.fields["url"] == url
    assert "redirects" not in result.fields  # nothing answered, so nothing was redirected


async def test_each_run_opens_a_fresh_connection_on_one_shared_client(
    target: HttpTarget, resources: Resources
) -> None:
    for _ in range(3):
        result = await run_check(HttpStatus, {"url": target.url("/ok")}, resources=resources)
        assert result.status is Status.OK

    # The target keeps connections open, so a reused one would count once.
    assert target.connections == 3
    assert len(resources) == 1


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
async def test_no_connection_outlives_its_run(
    start_target: Callable[..., Awaitable[HttpTarget]],
    self_signed: ssl.SSLContext,
    resources: Resources,
    tls: bool,
) -> None:
    target = await start_target(self_signed if tls else None)
    for path in ("/ok", "/redirect", "/error"):
        options = {"url": target.url(path), "verify_tls": False}
        await run_check(HttpStatus, options, resources=resources)

    # The target keeps each connection until the client closes it: its
    # handlers all end only if every run closed what it opened.
    assert target.connections == 4
    await asyncio.wait_for(asyncio.gather(*target.handlers), timeout=10)


async def test_verify_tls_setting_gets_its_own_client(
    target: HttpTarget, resources: Resources
) -> None:
    for verify in (True, False, True):
        options = {"url": target.url("/ok"), "verify_tls": verify}
        result = await run_check(HttpStatus, options, resources=resources)
        assert result.status is Status.OK
    assert len(resources) == 2


async def test_headers_are_sent_but_not_reported(target: HttpTarget) -> None:
    options = {"url": target.url("/ok"), "method": "head", "headers": {"X-Probe": SECRET}}

    result = await run_check(HttpStatus, options)

    assert result.status is Status.OK
    [request] = target.requests
    assert request.method == "HEAD"
    assert request.headers["x-probe"] == SECRET
    assert SECRET not in repr(result)
    assert SECRET not in repr(HttpStatusOptions.model_validate(options))


async def test_credentials_in_the_url_are_not_reported(target: HttpTarget) -> None:
    url = target.url("/ok").replace("://", f"://user:{SECRET}@")

    result = await run_check(HttpStatus, {"url": url})

    assert result.status is Status.OK
    assert result.fields["url"] == target.url("/ok")
    assert target.requests[0].headers["authorization"].startswith("Basic ")


async def test_self_signed_certificate(
    start_target: Callable[..., Awaitable[HttpTarget]],
    self_signed: ssl.SSLContext,
    resources: Resources,
) -> None:
    target = await start_target(self_signed)

    checked = await run_check(HttpStatus, {"url": target.url("/ok")}, resources=resources)
    assert checked.status is Status.ERROR
    assert checked.fields["error_type"] == "ConnectError"
    assert checked.message is not None
    assert "TLS certificate not trusted" in checked.message

    unchecked = await run_check(
        HttpStatus, {"url": target.url("/ok"), "verify_tls": False}, resources=resources
    )
    assert unchecked.status is Status.OK
    assert unchecked.fields["status_code"] == 200


@pytest.mark.parametrize(
    ("options", "field_name"),
    [
        pytest.param({"url": "ftp://example.com/"}, "url", id="url-scheme"),
        pytest.param({"url": "not a url"}, "url", id="url-garbage"),
        pytest.param({}, "url", id="url-missing"),
        pytest.param({"url": "http://x/", "method": "FETCH"}, "method", id="method"),
        pytest.param({"url": "http://x/", "expect_status": [600]}, "expect_status", id="status"),
        pytest.param({"url": "http://x/", "expect_status": []}, "expect_status", id="no-status"),
        pytest.param({"url": "http://x/", "headers": {"Bad Name": "v"}}, "headers", id="hname"),
        pytest.param({"url": "http://x/", "timeout": 3}, "timeout", id="unknown-key"),
    ],
)
def test_bad_options_are_rejected_naming_the_field(
    options: dict[str, object], field_name: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        HttpStatusOptions.model_validate(options)
    assert caught.value.errors()[0]["loc"][0] == field_name
    assert field_name in str(caught.value)


def test_bad_header_value_is_rejected_without_echoing_it() -> None:
    options = {"url": "http://x/", "headers": {"Authorization": f"Bearer {SECRET}\r\nX: y"}}
    with pytest.raises(ValidationError) as caught:
        HttpStatusOptions.model_validate(options)
    assert "'Authorization'" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_method_is_case_insensitive() -> None:
    options = HttpStatusOptions.model_validate({"url": "http://x/", "method": "post"})
    assert options.method == "POST"


# ------------------------------------------------------------------ hostile answers
# (hostile and start_hostile: conftest.py; the body's own tests: test_http_body.py)


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        pytest.param(
            "/reset",
            Status.ERROR,
            "body broken after 1000 bytes: connection reset by the server",
            id="reset-mid-body",
        ),
        pytest.param(
            "/short",
            Status.ERROR,
            "body shorter than its Content-Length: the connection closed after 100 of 1000 bytes",
            id="short-content-length",
        ),
        pytest.param(
            "/bad-chunk",
            Status.ERROR,
            "bad chunked encoding after 5 bytes: illegal chunk header: 'zz\\r\\n'",
            id="bad-chunk",
        ),
        pytest.param(
            "/truncated-chunk",
            Status.ERROR,
            "chunked body cut short: the connection closed inside a chunk, after 10 bytes",
            id="truncated-chunk",
        ),
        pytest.param(
            "/bad-gzip",
            Status.ERROR,
            "cannot decode the gzip body: incorrect header check",
            id="bad-gzip",
        ),
        pytest.param(
            "/http09",
            Status.ERROR,
            "not an HTTP response: 'hello world\\n' (an HTTP/0.9 reply, or another protocol)",
            id="http09",
        ),
        pytest.param(
            "/bad-status", Status.ERROR, "invalid status line: 'HTTP/1.1 abc OK'", id="bad-status"
        ),
        pytest.param(
            "/no-location", Status.FAIL, "redirect without a Location header", id="no-location"
        ),
        pytest.param(
            "/bad-location",
            Status.FAIL,
            "redirect to an invalid URL: missing ']' after the IPv6 address: 'http://[::1/next'",
            id="bad-location",
        ),
        pytest.param(
            "/big-headers",
            Status.ERROR,
            f"response headers larger than {MAX_HEADER_BYTES // 1024} KiB",
            id="200KiB-headers",
        ),
    ],
)
async def test_broken_answers_say_what_broke(
    hostile: HostileServer, path: str, status: Status, message: str
) -> None:
    result = await run_check(HttpStatus, {"url": hostile.url(path)})
    assert result.status is status
    assert result.message == message
    assert result.fields["url"] == hostile.url(path)
    assert "bytearray" not in repr(result)


async def test_broken_body_is_ok_when_the_body_is_not_read(hostile: HostileServer) -> None:
    result = await run_check(HttpStatus, {"url": hostile.url("/reset"), "max_body_bytes": 0})
    assert result.status is Status.OK
    assert result.message == "status 200"


async def test_no_location_fails_without_following_too(hostile: HostileServer) -> None:
    options = {"url": hostile.url("/no-location"), "follow_redirects": False}
    result = await run_check(HttpStatus, options)
    assert result.status is Status.FAIL
    assert result.message == "redirect without a Location header"
    assert result.fields["status_code"] == 302


async def test_body_trickling_at_one_byte_a_second_times_out(hostile: HostileServer) -> None:
    result = await run_check(HttpStatus, {"url": hostile.url("/trickle")}, timeout=1)
    assert result.status is Status.TIMEOUT
    assert result.message == "no result within the job's timeout of 1s"


async def test_failure_on_the_second_hop_names_the_hop(hostile: HostileServer) -> None:
    second = f"http://127.0.0.1:{closed_port()}/ok"
    url = hostile.url(f"/redirect?{urlencode({'to': second})}")
    result = await run_check(HttpStatus, {"url": url})
    assert result.status is Status.ERROR
    assert result.message == (
        f"after 1 redirect, {second}: cannot connect: connection refused "
        "(nothing listens on that port?)"
    )
    assert result.fields["url"] == second
    assert result.fields["redirects"] == 1


async def test_broken_body_after_a_redirect_names_the_hop(hostile: HostileServer) -> None:
    url = hostile.url(f"/redirect?{urlencode({'to': '/short'})}")
    result = await run_check(HttpStatus, {"url": url})
    assert result.status is Status.ERROR
    assert result.message is not None
    assert result.message.startswith(f"after 1 redirect, {hostile.url('/short')}: body shorter")


async def test_plain_http_to_a_tls_port_says_so(
    start_hostile: Callable[..., Awaitable[HostileServer]], self_signed: ssl.SSLContext
) -> None:
    server = await start_hostile(ssl_context=self_signed)
    url = server.url("/ok").replace("https://", "http://")
    result = await run_check(HttpStatus, {"url": url}, timeout=3)
    assert result.status is Status.ERROR
    # Python's TLS server hangs up without an alert; others send one (below).
    assert result.message == "the server closed the connection without answering"


async def test_tls_alert_says_use_https(hostile: HostileServer) -> None:
    result = await run_check(HttpStatus, {"url": hostile.url("/tls-alert")})
    assert result.status is Status.ERROR
    assert result.message == "not an HTTP response: the server answered in TLS; use https://"


# ---------------------------------------- time and certificate (the body: test_http_assertions.py)


async def test_max_response_time_names_the_slow_phase(hostile: HostileServer) -> None:
    options = {"url": hostile.url("/slow?delay=0.3"), "max_response_time": "100ms"}
    result = await run_check(HttpStatus, options)
    assert result.status is Status.FAIL
    assert result.message is not None
    assert re.fullmatch(
        r"response time: expected at most 100ms, took \d+ms \(slowest phase: ttfb \d+ms\)",
        result.message,
    ), result.message


async def test_certificate_days_are_reported_and_checked(
    start_hostile: Callable[..., Awaitable[HostileServer]], self_signed: ssl.SSLContext
) -> None:
    server = await start_hostile(ssl_context=self_signed)
    options = {"url": server.url("/ok"), "verify_tls": False}

    plain = await run_check(HttpStatus, options)
    assert plain.status is Status.OK
    # The test certificate is valid for one day.
    assert 0.9 <= plain.fields["cert_expires_in_days"] <= 1.0

    enough = await run_check(HttpStatus, {**options, "min_cert_days": 0.5})
    assert enough.status is Status.OK

    short = await run_check(HttpStatus, {**options, "min_cert_days": 14})
    assert short.status is Status.FAIL
    assert short.message == (
        "certificate: expected at least 14 days left (min_cert_days), expires in 1.0 days"
    )


async def test_min_cert_days_without_tls_fails(hostile: HostileServer) -> None:
    result = await run_check(HttpStatus, {"url": hostile.url("/ok"), "min_cert_days": 14})
    assert result.status is Status.FAIL
    assert result.message == (
        "certificate: expected at least 14 days left, but no TLS connection was made"
    )
    assert "cert_expires_in_days" not in result.fields


# ------------------------------------------------------------------ through the CLI


async def test_runner_run_logs_the_new_fields(
    hostile: HostileServer, write_config: Callable[[str], Path]
) -> None:
    # The real CLI in a subprocess: the nested timings_ms and the assertion
    # options go through config loading, the result log and history.
    config = write_config(
        f"""
        jobs:
          - name: api
            plugin: http-status
            options:
              url: "{hostile.url("/json")}"
              expect_json:
                - {{path: status, equals: UP}}
                - {{path: latency_ms, less_than: 10}}
              max_response_time: 5s
        """
    )
    # In a thread: the hostile server answers on this test's event loop.
    result = await asyncio.to_thread(run_cli, "run", str(config))
    assert result.returncode == 1, result.stderr
    [finished] = [
        event
        for line in result.stdout.splitlines()
        if (event := json.loads(line))["event"] == "job.finished"
    ]
    assert finished["status"] == "fail"
    assert finished["message"] == "JSON latency_ms: expected less than 10, got 42"
    assert set(finished["timings_ms"]) == set(PHASES)
    assert finished["ip"] == "127.0.0.1"
    assert finished["body_complete"] is True


# ------------------------------------------------------------------ options


@pytest.mark.parametrize(
    ("options", "field_name", "text"),
    [
        pytest.param(
            {"max_body_bytes": 0, "expect_body": {"contains": "x"}},
            "expect_body",
            "needs the body",
            id="body-without-read",
        ),
        pytest.param(
            {"max_body_bytes": 0, "expect_json": [{"path": "a", "exists": True}]},
            "expect_json",
            "needs the body",
            id="json-without-read",
        ),
        pytest.param({"max_body_bytes": -1}, "max_body_bytes", "greater than", id="negative"),
        pytest.param({"expect_body": {}}, "expect_body", "at least one", id="empty-body"),
        pytest.param(
            {"expect_body": {"regex": "("}}, "expect_body", "not a valid regular", id="body-re"
        ),
        pytest.param(
            {"expect_json": [{"path": "a", "equals": 1, "exists": True}]},
            "expect_json",
            "exactly one of",
            id="two-tests",
        ),
        pytest.param(
            {"expect_json": [{"path": "a"}]}, "expect_json", "exactly one of", id="no-test"
        ),
        pytest.param(
            {"expect_json": [{"path": "a[", "exists": True}]},
            "expect_json",
            "not a valid JMESPath",
            id="bad-path",
        ),
        pytest.param(
            {"expect_headers": {"X-A": "["}}, "expect_headers", "not a valid regular", id="hdr-re"
        ),
        pytest.param(
            {"expect_headers": {"Bad Name": "x"}}, "expect_headers", "header name", id="hdr-name"
        ),
        pytest.param({"max_response_time": "soon"}, "max_response_time", "duration", id="time"),
        pytest.param({"min_cert_days": -1}, "min_cert_days", "greater than", id="cert-days"),
        pytest.param({"ip_version": 5}, "ip_version", "4", id="ip-version"),
    ],
)
def test_bad_assertion_options_are_rejected(
    options: dict[str, object], field_name: str, text: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        HttpStatusOptions.model_validate({"url": "http://x/", **options})
    assert caught.value.errors()[0]["loc"][0] == field_name
    assert text in str(caught.value)


def test_max_response_time_takes_a_duration() -> None:
    options = HttpStatusOptions.model_validate({"url": "http://x/", "max_response_time": "800ms"})
    assert options.max_response_time == pytest.approx(0.8)

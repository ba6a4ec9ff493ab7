"""The http-status check against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import ValidationError

from runner.builtins.http_status import MAX_REDIRECTS, HttpStatus, HttpStatusOptions
from runner.plugin import Status
from runner.resources import Resources
from runner.testing import run_check

SECRET = "s3cret-token-value"

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
        line = await reader.readline()
        if not line:
            return None
        method, path, _ = line.decode("ascii").split(" ", 2)
        headers = {}
        while (header := await reader.readline()) not in (b"\r\n", b""):
            name, value = header.decode("ascii").split(":", 1)
            headers[name.strip().lower()] = value.strip()
        return Request(method, path, headers)

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


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        ["openssl", "req", "-x509", "-nodes", "-days", "1", *subject, *new_key, *files],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


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
    assert result.message == "cannot connect: Connection refused"
    assert result.fields["url"] == url


async def test_each_run_opens_a_fresh_connection_on_one_shared_client(
    target: HttpTarget, resources: Resources
) -> None:
    for _ in range(3):
        result = await run_check(HttpStatus, {"url": target.url("/ok")}, resources=resources)
        assert result.status is Status.OK

    # The target keeps connections open, so a reused one would count once.
    assert target.connections == 3
    assert len(resources) == 1


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

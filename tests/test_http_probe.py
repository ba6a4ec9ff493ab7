"""What one http-status run sees on the wire (builtins/http/probe.py): the name
lookup, the address that answered, time per phase, and the first bytes of the
answer. First the probe and its transport on their own, then through
http-status, against real servers on 127.0.0.1."""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpcore
import httpx
import pytest

from hostile_http import HostileServer, SlowTlsServer
from runner.builtins.http.probe import PHASES, Probe, ProbingTransport
from runner.builtins.http.status import HttpStatus
from runner.plugin import Result, Status
from runner.testing import run_check

# ------------------------------------------------------------------ the probe


async def get(url: str, probe: Probe | None) -> httpx.Response:
    """GET ``url`` through the probing transport, reporting to ``probe`` if given."""
    transport = ProbingTransport(ssl.create_default_context())
    async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
        if probe is None:
            return await client.get(url)
        with probe.active():
            response = await client.get(url, extensions={"trace": probe.trace})
            probe.end_transfer()
            return response


async def test_the_probe_sees_the_lookup_the_address_and_the_answer(
    hostile: HostileServer,
) -> None:
    probe = Probe(ip_version=4)
    response = await get(hostile.url("/ok", host="localhost"), probe)
    assert response.status_code == 200
    assert probe.ip == "127.0.0.1"
    assert bytes(probe.head).startswith(b"HTTP/1.1 200")
    assert probe.phases["dns"] > 0 and probe.phases["tls"] == 0
    assert probe.unresolved is None
    assert list(probe.timings_ms()) == list(PHASES)


async def test_without_a_probe_the_transport_still_answers(hostile: HostileServer) -> None:
    assert (await get(hostile.url("/ok"), None)).status_code == 200


async def test_the_tls_context_is_built_by_the_first_https_request(
    hostile: HostileServer,
    start_hostile: Callable[..., Awaitable[HostileServer]],
    self_signed: ssl.SSLContext,
) -> None:
    built: list[ssl.SSLContext] = []

    def tls_context() -> ssl.SSLContext:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        built.append(context)
        return context

    tls = await start_hostile(ssl_context=self_signed)
    async with httpx.AsyncClient(transport=ProbingTransport(tls_context)) as client:
        for _ in range(2):
            assert (await client.get(hostile.url("/ok"))).status_code == 200
        assert built == []  # plain http needs none: the CA store is not loaded
        for _ in range(2):
            assert (await client.get(tls.url("/ok"))).status_code == 200
    assert len(built) == 1


async def test_a_name_that_does_not_resolve_is_named() -> None:
    probe = Probe()
    with pytest.raises(httpcore.ConnectError):
        await probe.resolve("web.runner-test.invalid", 80)
    assert probe.unresolved == "web.runner-test.invalid"


async def test_addresses_follow_ip_version() -> None:
    assert await Probe(4).resolve("localhost", 80) == ["127.0.0.1"]
    assert await Probe(6).resolve("::1", 80) == ["::1"]
    with pytest.raises(httpcore.ConnectError, match=r"127\.0\.0\.1 is an IPv4 address"):
        await Probe(6).resolve("127.0.0.1", 80)


# ------------------------------------------------------------------ through http-status


async def test_time_until_a_body_breaks_is_transfer(hostile: HostileServer) -> None:
    result = await run_check(HttpStatus, {"url": hostile.url("/reset")})
    assert result.status is Status.ERROR
    assert result.fields["timings_ms"]["transfer"] >= 30  # the server waits 50 ms to reset


async def test_ip_version_picks_the_address_family(hostile: HostileServer) -> None:
    url = hostile.url("/ok", host="localhost")
    v4 = await run_check(HttpStatus, {"url": url, "ip_version": 4})
    assert v4.status is Status.OK
    assert v4.fields["ip"] == "127.0.0.1"

    literal = await run_check(HttpStatus, {"url": hostile.url("/ok"), "ip_version": 6})
    assert literal.status is Status.ERROR
    assert literal.message == "cannot connect: 127.0.0.1 is an IPv4 address, but ip_version is 6"


async def test_ip_version_6(start_hostile: Callable[..., Awaitable[HostileServer]]) -> None:
    try:
        server = await start_hostile(host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    result = await run_check(HttpStatus, {"url": server.url("/ok"), "ip_version": "6"})
    assert result.status is Status.OK, result.message
    assert result.fields["ip"] == "::1"


async def _timed(options: dict[str, Any]) -> tuple[Result, float]:
    started = time.perf_counter()
    result = await run_check(HttpStatus, options)
    return result, (time.perf_counter() - started) * 1000


async def test_timings_are_present_and_add_up_to_no_more_than_the_run(
    hostile: HostileServer,
) -> None:
    result, duration_ms = await _timed({"url": hostile.url("/page", host="localhost")})
    assert result.status is Status.OK
    timings = result.fields["timings_ms"]
    assert list(timings) == ["dns", "connect", "tls", "request", "ttfb", "transfer"]
    assert all(value >= 0 for value in timings.values())
    assert sum(timings.values()) <= duration_ms
    assert timings["dns"] > 0  # "localhost" was looked up
    assert timings["tls"] == 0
    assert result.fields["ip"] in ("127.0.0.1", "::1")


async def test_errors_carry_timings_too(hostile: HostileServer) -> None:
    result = await run_check(HttpStatus, {"url": hostile.url("/short")})
    assert result.status is Status.ERROR
    assert set(result.fields["timings_ms"]) == set(PHASES)
    assert result.fields["ip"] == "127.0.0.1"


async def test_slow_first_byte_shows_in_ttfb(hostile: HostileServer) -> None:
    result, duration_ms = await _timed({"url": hostile.url("/slow?delay=0.3")})
    timings = result.fields["timings_ms"]
    assert timings["ttfb"] >= 300
    assert timings["connect"] < 250 and timings["request"] < 250 and timings["transfer"] < 250
    assert sum(timings.values()) <= duration_ms


async def test_redirect_hops_add_up(hostile: HostileServer) -> None:
    url = hostile.url(f"/slow?{urlencode({'delay': '0.2', 'to': '/slow?delay=0.2'})}")
    result = await run_check(HttpStatus, {"url": url})
    assert result.status is Status.OK
    assert result.fields["redirects"] == 1
    assert result.fields["timings_ms"]["ttfb"] >= 400


async def test_slow_tls_handshake_shows_in_tls(self_signed: ssl.SSLContext) -> None:
    with SlowTlsServer(self_signed, delay=0.3) as server:
        result, duration_ms = await _timed({"url": server.url("/ok"), "verify_tls": False})
    assert result.status is Status.OK, result.message
    timings = result.fields["timings_ms"]
    assert timings["tls"] >= 250  # the server waited 300 ms from accepting
    assert timings["connect"] < 250 and timings["ttfb"] < 250
    assert sum(timings.values()) <= duration_ms


async def test_name_stays_in_host_header_and_sni(
    start_hostile: Callable[..., Awaitable[HostileServer]], self_signed: ssl.SSLContext
) -> None:
    server = await start_hostile(ssl_context=self_signed)
    url = server.url("/host", host="localhost")
    options = {"url": url, "verify_tls": False, "ip_version": 4}
    result = await run_check(
        HttpStatus, {**options, "expect_body": {"contains": f"host=localhost:{server.port}"}}
    )
    assert result.status is Status.OK, result.message
    assert result.fields["ip"] == "127.0.0.1"
    assert result.fields["url"] == url
    assert server.server_names == ["localhost"]


async def test_certificate_name_is_checked_against_the_url_not_the_address(
    start_hostile: Callable[..., Awaitable[HostileServer]],
    self_signed: ssl.SSLContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Trust the test certificate (made for IP 127.0.0.1 only) as the CA store.
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
    server = await start_hostile(ssl_context=self_signed)

    by_address = await run_check(HttpStatus, {"url": server.url("/ok")})
    assert by_address.status is Status.OK, by_address.message

    # Reached as "localhost", the same address: the name does not match.
    by_name = await run_check(HttpStatus, {"url": server.url("/ok", host="localhost")})
    assert by_name.status is Status.ERROR
    assert by_name.message is not None
    assert by_name.message.startswith("cannot connect: TLS certificate not trusted: Hostname")

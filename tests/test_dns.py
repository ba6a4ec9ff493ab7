"""The dns check against a real DNS server on 127.0.0.1 (tests/dnsserver.py): no mocks."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dnsserver import DnsServer, dns_server
from helpers import closed_port, run_cli, serve_until
from runner.builtins.dns import Dns, DnsOptions
from runner.plugin import Result, Status
from runner.testing import run_check

WriteConfig = Callable[..., Path]


@pytest.fixture(scope="module")
def server() -> Iterator[DnsServer]:
    with dns_server() as running:
        yield running


async def check(server: DnsServer, timeout: float = 5.0, **options: Any) -> Result:
    return await run_check(Dns, {"server": f"127.0.0.1:{server.port}", **options}, timeout=timeout)


def test_registered_as_dns() -> None:
    (entry,) = entry_points(group="runner.plugins", name="dns")
    assert entry.load() is Dns


async def test_answers_found(server: DnsServer) -> None:
    result = await check(server, name="www.test", type="A")
    assert result.status is Status.OK, result.message
    assert result.message == "A www.test.: 127.0.0.1, 127.0.0.2"
    fields = result.fields
    assert sorted(fields["answers"]) == ["127.0.0.1", "127.0.0.2"]
    assert fields["rcode"] == "NOERROR"
    assert fields["server"] == f"127.0.0.1:{server.port}"
    assert fields["name"] == "www.test."
    assert 0 <= fields["query_time_ms"] < 5000
    assert server.last_payload == 1232  # EDNS0, as dig asks


@pytest.mark.parametrize(
    ("options", "answers"),
    [
        pytest.param(
            {"name": "www.test", "type": "aaaa", "expect": "2001:DB8:0::1"},
            ["2001:db8::1"],
            id="aaaa-written-differently",
        ),
        pytest.param(
            {"name": "test", "type": "MX", "expect": ["10 MAIL.test"]},
            ["10 mail.test.", "20 backup.mail.test."],
            id="mx-without-trailing-dot",
        ),
        pytest.param(
            {"name": "test", "type": "TXT", "expect": ["v=spf1 ip4:192.0.2.0/24 -all"]},
            ["hello world", "v=spf1 ip4:192.0.2.0/24 -all"],
            id="txt-strings-joined",
        ),
        pytest.param(
            {"name": "_sip._tcp.test", "type": "SRV", "expect_regex": r"5060 sip\.test"},
            ["10 60 5060 sip.test."],
            id="srv-regex",
        ),
        pytest.param(
            {"name": "alias.test", "type": "CNAME", "expect": "www.test"},
            ["www.test."],
            id="cname",
        ),
        pytest.param({"name": "127.0.0.1", "type": "PTR"}, None, id="ptr-from-address"),
    ],
)
async def test_expect_passes(
    server: DnsServer, options: dict[str, Any], answers: list[str] | None
) -> None:
    result = await check(server, **options)
    if answers is None:  # the PTR: the zone has no reverse zone, so the server refuses
        assert result.fields["name"] == "1.0.0.127.in-addr.arpa."
        assert result.status is Status.FAIL
        assert "REFUSED" in (result.message or "")
        return
    assert result.status is Status.OK, result.message
    assert sorted(result.fields["answers"]) == answers


async def test_cname_is_followed_for_an_address_query(server: DnsServer) -> None:
    result = await check(server, name="alias.test", expect=["127.0.0.2"])
    assert result.status is Status.OK, result.message
    assert result.fields["canonical_name"] == "www.test."


async def test_expected_answer_missing(server: DnsServer) -> None:
    result = await check(server, name="www.test", expect=["127.0.0.1", "192.0.2.9"])
    assert result.status is Status.FAIL
    assert result.message == (
        "192.0.2.9 not in the answer for A www.test.; got 127.0.0.1, 127.0.0.2"
    )


async def test_regex_matching_no_answer(server: DnsServer) -> None:
    result = await check(server, name="test", type="TXT", expect_regex="^v=DKIM1")
    assert result.status is Status.FAIL
    assert result.message is not None
    assert result.message.startswith("no answer for TXT test. matches /^v=DKIM1/; got ")
    assert "hello world" in result.message


async def test_empty_answer_fails(server: DnsServer) -> None:
    result = await check(server, name="ns.test", type="AAAA")
    assert result.status is Status.FAIL
    assert result.message == "no AAAA records for ns.test. (NOERROR, empty answer)"
    assert result.fields["answers"] == []


async def test_nxdomain_expected_is_ok(server: DnsServer) -> None:
    result = await check(server, name="gone.test", expect_rcode="NXDOMAIN")
    assert result.status is Status.OK, result.message
    assert result.message == "gone.test.: NXDOMAIN, as expected"
    assert result.fields["rcode"] == "NXDOMAIN"


async def test_nxdomain_not_expected_fails(server: DnsServer) -> None:
    result = await check(server, name="gone.test")
    assert result.status is Status.FAIL
    assert result.message == "gone.test. does not exist (NXDOMAIN)"
    assert result.fields["rcode"] == "NXDOMAIN"


async def test_name_still_there_when_expected_gone(server: DnsServer) -> None:
    result = await check(server, name="www.test", expect_rcode="NXDOMAIN")
    assert result.status is Status.FAIL
    assert result.message == (
        "www.test. exists (NOERROR, 2 A records: 127.0.0.1, 127.0.0.2); expected NXDOMAIN"
    )


async def test_name_with_other_records_still_exists(server: DnsServer) -> None:
    result = await check(server, name="ns.test", type="AAAA", expect_rcode="NXDOMAIN")
    assert result.status is Status.FAIL
    assert result.message == "ns.test. exists (NOERROR, no AAAA records); expected NXDOMAIN"


async def test_refused_says_why(server: DnsServer) -> None:
    result = await check(server, name="example.com")
    assert result.status is Status.FAIL
    assert result.fields["rcode"] == "REFUSED"
    assert result.fields["server"] == f"127.0.0.1:{server.port}"
    assert result.message == (
        "the server answered REFUSED for A example.com., expected NOERROR (the server does "
        "not serve this zone, or does not recurse for this client)"
    )
    refused = await check(server, name="example.com", expect_rcode="REFUSED")
    assert refused.status is Status.OK


async def test_truncated_answer_is_retried_over_tcp(server: DnsServer) -> None:
    result = await check(server, name="big.test", type="TXT", expect_regex="^x{600}$")
    assert result.status is Status.OK, result.message
    assert result.fields["answers"] == ["x" * 255]  # kept short in the result


async def test_server_that_never_answers_times_out() -> None:
    with dns_server(silent=True) as silent:
        result = await check(silent, name="www.test", timeout=1.0)
        assert result.status is Status.TIMEOUT
        assert silent.queries >= 1


async def test_closed_port_times_out() -> None:
    # dnspython's UDP sockets are not connected, so the kernel's "port
    # unreachable" never reaches it: a closed port looks like a silent server.
    result = await run_check(
        Dns, {"name": "www.test", "server": f"127.0.0.1:{closed_port()}"}, timeout=0.5
    )
    assert result.status is Status.TIMEOUT


async def test_truncated_answer_without_tcp_is_an_error() -> None:
    with dns_server(tcp=False) as udp_only:
        result = await check(udp_only, name="big.test", type="TXT")
    assert result.status is Status.ERROR
    where = f"127.0.0.1:{udp_only.port}"
    assert result.message == (
        f"no answer from {where}: answer truncated over UDP; "
        f"{where} over TCP: connection refused (no DNS server on that port?)"
    )


@pytest.fixture
def system_resolver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DnsServer]:
    """The test server as this host's resolver, on port 53 as resolv.conf allows.

    The tests cannot rewrite /etc/resolv.conf, so the plugin is pointed at a
    file of the same format here; the server binds port 53 of a loopback
    address of its own (127.0.0.0/8 is all local on Linux), which needs root.
    """
    # An address of its own, so two test runs on one machine do not collide.
    address = f"127.53.{random.randrange(256)}.{random.randrange(1, 255)}"
    try:
        with dns_server(host=address, port=53) as running:
            conf = tmp_path / "resolv.conf"
            conf.write_text(f"search test\nnameserver {address}\noptions timeout:1\n")
            monkeypatch.setattr("runner.builtins.dns.RESOLV_CONF", str(conf))
            yield running
    except PermissionError:
        pytest.skip("binding port 53 needs root (CI runs as root)")


async def test_system_resolver_without_server(system_resolver: DnsServer) -> None:
    result = await run_check(Dns, {"name": "www.test", "expect": "127.0.0.1"})
    assert result.status is Status.OK, result.message
    assert result.fields["server"] == f"{system_resolver.host}:53"


async def test_search_domains_are_not_appended(system_resolver: DnsServer) -> None:
    # resolv.conf says "search test", but "www" means "www.", which the server refuses.
    result = await run_check(Dns, {"name": "www"})
    assert result.status is Status.FAIL
    assert result.fields["name"] == "www."
    assert result.fields["rcode"] == "REFUSED"


async def test_no_resolvers_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# nothing here\n")
    monkeypatch.setattr("runner.builtins.dns.RESOLV_CONF", str(conf))
    result = await run_check(Dns, {"name": "www.test"})
    assert result.status is Status.ERROR
    assert result.message is not None
    assert result.message == (
        f"no DNS servers configured in {conf} (no nameservers); set the server option"
    )


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"name": "x.test", "type": "AXFR"}, "Input should be 'A', 'AAAA'"),
        ({"name": "x.test", "server": "dns.google"}, "'dns.google' is not an IP address"),
        ({"name": "x.test", "server": "127.0.0.1:99999"}, "port '99999' is not a number"),
        ({"name": "x.test", "expect": "not-an-ip"}, "'not-an-ip' is not a valid A record"),
        ({"name": "x.test", "expect_regex": "("}, "not a valid regular expression"),
        (
            {"name": "x.test", "expect": "192.0.2.1", "expect_rcode": "NXDOMAIN"},
            "remove them or set expect_rcode: NOERROR",
        ),
        ({"name": "a..b"}, "not a valid DNS name"),
    ],
)
def test_bad_options(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        DnsOptions.model_validate(options)


def test_servers_in_every_form() -> None:
    for server in ("192.0.2.53", "192.0.2.53:5353", "[2001:db8::53]:53", "2001:db8::53"):
        DnsOptions.model_validate({"name": "x.test", "server": server})


def test_check_reports_a_bad_type_on_its_line(write_config: WriteConfig) -> None:
    path = write_config(
        """
        jobs:
          - name: mail
            plugin: dns
            options:
              name: example.test
              type: MXX
        """
    )
    result = run_cli("check", str(path))
    assert result.returncode == 2
    assert f"{path}:6: jobs[0] 'mail': options.type: " in result.stderr
    assert "'MX'" in result.stderr  # the allowed values are listed


def test_in_the_daemon(server: DnsServer, write_config: WriteConfig) -> None:
    path = write_config(
        f"""
        jobs:
          - name: www
            plugin: dns
            interval: 1h
            options:
              name: www.test
              server: 127.0.0.1:{server.port}
              expect: [127.0.0.2]
        """
    )
    runner = serve_until(path, event="job.finished", job="www")
    (finished,) = runner.find(event="job.finished", job="www")
    assert finished["status"] == "ok", finished
    assert finished["answers"] == ["127.0.0.1", "127.0.0.2"]
    assert finished["rcode"] == "NOERROR"

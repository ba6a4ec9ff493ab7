"""``dns``: ask a DNS server for a name and check the answer and the response code.

Choices, and why:

* **dnspython's asynchronous stub resolver** does the querying: it
  retransmits a UDP query that got no answer, retries over TCP when the
  answer is truncated, follows CNAMEs within the answer, validates what
  comes back and tries the next server of the system's list when one
  fails. Writing that again would be worse.
* **The job's timeout is the one clock.** A query with no answer is sent
  again every 2 s (or resolv.conf's ``options timeout:``) until the daemon
  cancels the run at the job's timeout and reports ``timeout``; the
  resolver's own lifetime is set past the job's deadline so it never fires
  first.
* **Names are absolute**: ``name`` is looked up as written, never with the
  search domains of resolv.conf appended, so a check means the same on
  every host. With ``type: PTR``, an IP address as ``name`` is turned into
  its ``in-addr.arpa``/``ip6.arpa`` name.
* **No cache**: every run asks. Without ``server`` the system's resolvers
  are read from /etc/resolv.conf on every run, so a change there counts at
  once.
* **Answers in the form you write them**: ``expect`` entries are parsed as
  records of ``type`` and compared as DNS compares them (``2001:DB8::1`` is
  ``2001:db8::1``, names match without the trailing dot and in any case);
  a TXT record is its strings joined, without quotes, as SPF and DKIM read
  it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from typing import Any, Literal

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.reversename
import dns.rrset
from pydantic import Field, ValidationInfo, field_validator, model_validator

from runner.builtins._compat import NameserverError, nameserver_errors
from runner.builtins._net import format_address
from runner.builtins._regex import Regex
from runner.plugin import Check, Options, Result, RunContext, describe_error

__all__ = ["Dns", "DnsOptions"]

RecordType = Literal[
    "A",
    "AAAA",
    "CAA",
    "CNAME",
    "DNSKEY",
    "DS",
    "HTTPS",
    "MX",
    "NAPTR",
    "NS",
    "PTR",
    "SOA",
    "SRV",
    "SSHFP",
    "SVCB",
    "TLSA",
    "TXT",
]
Rcode = Literal["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "NOTIMP", "FORMERR"]

#: Where the system's resolvers are listed (read on every run without ``server``).
RESOLV_CONF = "/etc/resolv.conf"
#: The UDP payload size announced with EDNS0.
EDNS_PAYLOAD = 1232
#: Answers kept in a result (a TXT or NS set can be long; history keeps every run).
MAX_ANSWERS = 20
#: Characters of one answer kept in a result.
MAX_ANSWER_CHARS = 255

_HINTS = {
    "REFUSED": " (the server does not serve this zone, or does not recurse for this client)",
    "SERVFAIL": " (the server could not resolve it: unreachable authoritative servers, "
    "a broken delegation or DNSSEC failure)",
}


class DnsOptions(Options):
    """Options of the ``dns`` check."""

    name: str = Field(
        min_length=1,
        description="The name to look up, as an absolute name (no search domains). "
        "With type PTR an IP address works too.",
    )
    type: RecordType = Field("A", description="The record type to ask for.")
    server: str | None = Field(
        None,
        description="The DNS server to ask: an IP address, ip:port or [ipv6]:port (port 53 by "
        "default). Default: the system's resolvers from /etc/resolv.conf.",
    )
    expect: list[str] | str | None = Field(
        None,
        description="Answers that must all be in the answer (others may be there too), "
        "written as in a zone file: 192.0.2.1, '10 mail.example.com', a TXT's text unquoted. "
        "One answer or a list.",
    )
    expect_regex: Regex | None = Field(
        None,
        description="A regular expression at least one answer must match (searched anywhere "
        "in the answer as shown in the result).",
    )
    expect_rcode: Rcode = Field(
        "NOERROR",
        description="The response code that counts as ok: NOERROR (the default; an empty "
        "answer fails), or NXDOMAIN to check that a name is gone.",
    )

    @field_validator("type", "expect_rcode", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if _ip(value) is None:
            try:
                dns.name.from_text(value)
            except dns.exception.DNSException as exc:
                raise ValueError(f"not a valid DNS name: {exc}") from None
        return value

    @field_validator("server")
    @classmethod
    def _check_server(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_server(value)
        return value

    @field_validator("expect")
    @classmethod
    def _check_expect(
        cls, value: list[str] | str | None, info: ValidationInfo
    ) -> list[str] | str | None:
        rdtype = info.data.get("type")
        if value is None or rdtype is None:
            return value
        for text in [value] if isinstance(value, str) else value:
            _expected_record(rdtype, text)
        return value

    @model_validator(mode="after")
    def _expect_needs_answers(self) -> DnsOptions:
        if self.expect_rcode != "NOERROR" and (self.expect or self.expect_regex):
            raise ValueError(
                f"expect and expect_regex check answers, which a {self.expect_rcode} response "
                "has none of; remove them or set expect_rcode: NOERROR"
            )
        return self


class Dns(Check[DnsOptions]):
    """Looks a name up in DNS; checks the response code and the answers."""

    Options = DnsOptions

    def __init__(self, options: DnsOptions) -> None:
        super().__init__(options)
        opts = options
        ip = _ip(opts.name)
        if opts.type == "PTR" and ip is not None:
            self._qname = dns.reversename.from_address(str(ip))
        else:
            self._qname = dns.name.from_text(opts.name)
        self._rdtype = dns.rdatatype.from_text(opts.type)
        self._server = _parse_server(opts.server) if opts.server is not None else None
        expect = [opts.expect] if isinstance(opts.expect, str) else opts.expect or []
        self._expected = [(t, _expected_record(opts.type, t)) for t in expect]
        self._regex = re.compile(opts.expect_regex) if opts.expect_regex is not None else None

    async def run(self, ctx: RunContext) -> Result:
        opts = self.options
        loop = asyncio.get_running_loop()
        qname = self._qname.to_text()
        fields: dict[str, Any] = {"name": qname, "type": opts.type}
        if self._server is not None:
            fields["server"] = format_address(*self._server)
        try:
            resolver = self._resolver()
        except dns.resolver.NoResolverConfiguration as exc:
            return Result.error(
                f"no DNS servers configured in {RESOLV_CONF} ({exc}); set the server option",
                error_type=type(exc).__name__,
                **fields,
            )

        started = loop.time()
        rrset: dns.rrset.RRset | None = None
        try:
            answer = await resolver.resolve(
                self._qname,
                self._rdtype,
                raise_on_no_answer=False,
                search=False,
                # Past the job's deadline: the daemon's cancellation is the clock.
                lifetime=max(ctx.deadline - loop.time(), 0) + 1,
            )
        except dns.resolver.NXDOMAIN:
            rcode = "NXDOMAIN"
        except dns.resolver.YXDOMAIN:
            rcode = "YXDOMAIN"
        except dns.resolver.NoNameservers as exc:
            errors = nameserver_errors(exc)
            fields["query_time_ms"] = _ms(loop.time() - started)
            answered = [err for err in errors if err.answer is not None]
            if not answered:
                return Result.error(_no_answer(errors), error_type="NoNameservers", **fields)
            last = answered[-1]
            fields["server"] = format_address(last.address, last.port)
            rcode = dns.rcode.to_text(last.answer.rcode())
        except dns.exception.DNSException as exc:
            fields["query_time_ms"] = _ms(loop.time() - started)
            return Result.error(f"DNS query failed: {exc}", error_type=type(exc).__name__, **fields)
        else:
            rcode = "NOERROR"
            rrset = answer.rrset
            if answer.nameserver is not None and answer.port is not None:
                fields["server"] = format_address(answer.nameserver, answer.port)
            if answer.canonical_name != self._qname:
                fields["canonical_name"] = answer.canonical_name.to_text()
        fields["query_time_ms"] = _ms(loop.time() - started)
        fields["rcode"] = rcode
        # Sorted: servers rotate the order, and a result should not change with it.
        shown = sorted(_shown(r) for r in rrset) if rrset is not None else []
        fields["answers"] = [s[:MAX_ANSWER_CHARS] for s in shown[:MAX_ANSWERS]]
        return self._judge(rcode, rrset, shown, fields)

    def _resolver(self) -> dns.asyncresolver.Resolver:
        """A fresh resolver: the given server, or the system's (re-read every run)."""
        if self._server is None:
            resolver = dns.asyncresolver.Resolver(filename=RESOLV_CONF)
        else:
            resolver = dns.asyncresolver.Resolver(configure=False)
            ip, port = self._server
            resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, port)]
        # EDNS0 with a 1232-byte UDP payload, as dig and current resolvers ask
        # (DNS Flag Day 2020): large answers come over UDP without fragments.
        resolver.use_edns(0, 0, EDNS_PAYLOAD)
        return resolver

    def _judge(
        self,
        rcode: str,
        rrset: dns.rrset.RRset | None,
        shown: list[str],
        fields: dict[str, Any],
    ) -> Result:
        opts = self.options
        qname = fields["name"]
        what = f"{opts.type} {qname}"
        got = _listing(shown)
        if rcode != opts.expect_rcode:
            if rcode == "NXDOMAIN":
                return Result.fail(f"{qname} does not exist (NXDOMAIN)", **fields)
            if opts.expect_rcode == "NXDOMAIN" and rcode == "NOERROR":
                count = f"{len(shown)} {opts.type} record{'s' if len(shown) > 1 else ''}"
                has = f"{count}: {got}" if shown else f"no {opts.type} records"
                return Result.fail(f"{qname} exists (NOERROR, {has}); expected NXDOMAIN", **fields)
            return Result.fail(
                f"the server answered {rcode} for {what}, expected {opts.expect_rcode}"
                f"{_HINTS.get(rcode, '')}",
                **fields,
            )
        if rcode != "NOERROR":
            return Result.ok(f"{qname}: {rcode}, as expected", **fields)
        if rrset is None or not shown:
            return Result.fail(
                f"no {opts.type} records for {qname} (NOERROR, empty answer)", **fields
            )
        missing = [text for text, record in self._expected if record not in rrset]
        if opts.type == "TXT":  # compared as the joined text, unquoted
            missing = [text for text, _ in self._expected if text not in shown]
        if missing:
            return Result.fail(
                f"{', '.join(missing)} not in the answer for {what}; got {got}", **fields
            )
        if self._regex is not None and not any(self._regex.search(s) for s in shown):
            return Result.fail(
                f"no answer for {what} matches /{self._regex.pattern}/; got {got}", **fields
            )
        return Result.ok(f"{what}: {got}", **fields)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _parse_server(text: str) -> tuple[str, int]:
    """``ip``, ``ip:port`` or ``[ipv6]:port`` as (ip, port).

    Raises:
        ValueError: not an IP address, or a bad port.
    """
    host, port = text, "53"
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: write an IPv6 address with a port as [2001:db8::1]:53")
        port = rest[1:] or "53"
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if _ip(host) is None:
        raise ValueError(
            f"{host!r} is not an IP address; a DNS server is given by address "
            "(192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:53)"
        )
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port!r} is not a number from 1 to 65535")
    return host, int(port)


def _expected_record(rdtype: str, text: str) -> dns.rdata.Rdata:
    """An ``expect`` entry as a record of ``rdtype``; raises ValueError naming it."""
    if rdtype == "TXT":
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    try:
        return dns.rdata.from_text(
            dns.rdataclass.IN, rdtype, text, origin=dns.name.root, relativize=False
        )
    except (dns.exception.DNSException, ValueError) as exc:
        raise ValueError(f"{text!r} is not a valid {rdtype} record: {exc}") from None


def _shown(record: dns.rdata.Rdata) -> str:
    """A record as a person writes it (a TXT: its strings joined, unquoted)."""
    strings = getattr(record, "strings", None)
    if record.rdtype == dns.rdatatype.TXT and strings is not None:
        return b"".join(strings).decode("utf-8", errors="replace")
    return str(record.to_text())


def _listing(shown: list[str]) -> str:
    if not shown:
        return "nothing"
    head = ", ".join(shown[:5])
    return head if len(shown) <= 5 else f"{head} and {len(shown) - 5} more"


def _no_answer(errors: list[NameserverError]) -> str:
    """The message when no server gave any answer."""
    parts = []
    for address, tcp, port, exc, _ in errors:
        transport = " over TCP" if tcp else ""
        reason: object = exc
        if isinstance(exc, ConnectionRefusedError):  # said for DNS: which server is missing
            reason = "connection refused (no DNS server on that port?)"
        elif isinstance(exc, OSError):
            reason = describe_error(exc)
        elif isinstance(exc, dns.message.Truncated):
            reason = "answer truncated over UDP"
        elif isinstance(exc, dns.exception.FormError):
            reason = f"malformed response: {exc}"
        parts.append(f"{format_address(address, port)}{transport}: {reason}")
    if not parts:
        return "no DNS server answered"
    return "no answer from " + "; ".join(dict.fromkeys(parts))


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)

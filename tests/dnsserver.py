"""A small authoritative DNS server for the tests, built from dnspython's own pieces.

It serves one zone over UDP and TCP on 127.0.0.1, on one free port for both,
in a thread with its own event loop, so it answers a daemon subprocess as
well as a check running in the test's loop. Names outside the zone get
REFUSED, names in it that do not exist NXDOMAIN, as a real server would.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.zone

ZONE = """
$ORIGIN test.
$TTL 300
@       SOA   ns.test. hostmaster.test. 1 3600 600 86400 300
@       NS    ns.test.
ns      A     127.0.0.1
www     A     127.0.0.1
www     A     127.0.0.2
www     AAAA  2001:db8::1
alias   CNAME www.test.
@       MX    10 mail.test.
@       MX    20 backup.mail.test.
@       TXT   "v=spf1 " "ip4:192.0.2.0/24 -all"
@       TXT   "hello world"
_sip._tcp SRV 10 60 5060 sip.test.
big     TXT   ( "%s" "%s" "%s" )
""" % (("x" * 200,) * 3)


class DnsServer:
    """Answers queries for ``zone`` on ``port`` (UDP and TCP) until closed."""

    def __init__(self, zone_text: str = ZONE, origin: str = "test.") -> None:
        self.zone = dns.zone.from_text(zone_text, origin=origin, relativize=False)
        self.origin = dns.name.from_text(origin)
        self.queries = 0
        self.host = "127.0.0.1"
        self.port = 0
        self.last_payload: int | None = None  # the EDNS UDP size the last query announced

    def answer(self, wire: bytes, max_size: int) -> bytes:
        """The response to one query in wire format."""
        query = dns.message.from_wire(wire)
        self.queries += 1
        self.last_payload = query.payload if query.edns >= 0 else None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name, rdtype = question.name, question.rdtype
        if not name.is_subdomain(self.origin):
            response.flags &= ~dns.flags.AA
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire(max_size=max_size)
        node = self.zone.get_node(name)
        if node is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire(max_size=max_size)
        cname = node.get_rdataset(self.zone.rdclass, dns.rdatatype.CNAME)
        if cname is not None and rdtype != dns.rdatatype.CNAME:
            response.answer.append(_rrset(name, cname))
            name = cname[0].target
            node = self.zone.get_node(name)
        rdataset = node.get_rdataset(self.zone.rdclass, rdtype) if node is not None else None
        if rdataset is not None:
            response.answer.append(_rrset(name, rdataset))
        try:
            return response.to_wire(max_size=max_size)
        except dns.exception.TooBig:
            response.answer.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()


def _rrset(name: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype)
    rrset.update(rdataset)
    return rrset


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer, silent: bool) -> None:
        self.server = server
        self.silent = silent

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.silent:
            self.server.queries += 1
            return
        # 512 bytes, as for a client without EDNS: the big record is truncated,
        # and the client must come back over TCP.
        self.transport.sendto(self.server.answer(data, 512), addr)  # type: ignore[attr-defined]


async def _tcp(
    server: DnsServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            wire = server.answer(await reader.readexactly(length), 65535)
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@contextmanager
def dns_server(
    *, silent: bool = False, tcp: bool = True, host: str = "127.0.0.1", port: int = 0
) -> Iterator[DnsServer]:
    """A running server on ``host`` (its ``port`` set; 0 picks a free one); ``silent``
    never answers, and without ``tcp`` nothing listens on the TCP port.

    Raises:
        OSError: the address cannot be bound (port 53 needs root).
    """
    server = DnsServer()
    server.host = host
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: asyncio.Future[None] | None = None
    failed: list[BaseException] = []

    async def main() -> None:
        nonlocal stop
        # One free port for both transports: bind TCP first, then UDP on the same number.
        tcp_sock = socket.socket()
        try:
            tcp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp_sock.bind((host, port))
        except OSError as exc:
            tcp_sock.close()
            failed.append(exc)
            started.set()
            return
        server.port = tcp_sock.getsockname()[1]
        if tcp:
            tcp_server = await asyncio.start_server(lambda r, w: _tcp(server, r, w), sock=tcp_sock)
        udp, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(server, silent), local_addr=(host, server.port)
        )
        stop = loop.create_future()
        started.set()
        try:
            await stop
        finally:
            udp.close()
            if tcp:
                tcp_server.close()
                await tcp_server.wait_closed()
            else:
                tcp_sock.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(5):
        raise RuntimeError("the test DNS server did not start")
    if failed:
        thread.join(5)
        loop.close()
        raise failed[0]
    try:
        yield server
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(5)
        loop.close()

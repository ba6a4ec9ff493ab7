"""The tls-cert check against real TLS servers on 127.0.0.1, and through the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from importlib.metadata import entry_points, version
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import ValidationError

from runner.plugin import UNRESOLVED_HOST, Status
from runner.testing import run_check
from runner_tls_cert import TlsCert

if TYPE_CHECKING:
    from conftest import Pki, ServedCert


async def _hold_until_closed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer nothing; close when the client does, as a quiet web server would."""
    with contextlib.suppress(OSError):
        await reader.read()
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


@contextlib.asynccontextmanager
async def tls_server(served: ServedCert) -> AsyncIterator[int]:
    """Serve a certificate over TLS on 127.0.0.1 at a free port; yield the port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(served.cert_file, served.key_file)
    server = await asyncio.start_server(_hold_until_closed, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def plain_tcp_server() -> AsyncIterator[int]:
    """A listener that is not TLS: it hangs up on every connection."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (just freed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_registered_as_tls_cert() -> None:
    (entry,) = entry_points(group="runner.plugins", name="tls-cert")
    assert entry.load() is TlsCert


async def test_100_days_left_is_ok(pki: Pki) -> None:
    served = pki.leaf(days=100)
    async with tls_server(served) as port:
        result = await run_check(
            TlsCert, {"host": "127.0.0.1", "port": port, "ca_file": str(pki.ca_file)}
        )

    assert result.status is Status.OK, result.message
    assert 99.9 <= result.fields["days_left"] <= 100.0
    assert result.message is not None and result.message.startswith("certificate expires in")
    assert result.fields["not_after"] == served.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert datetime.fromisoformat(result.fields["not_after"]) == served.not_after.replace(
        microsecond=0
    )
    assert result.fields["subject"] == "CN=localhost,O=runner tests"
    assert result.fields["issuer"] == "CN=runner test CA,O=runner tests"
    assert (result.fields["host"], result.fields["port"]) == ("127.0.0.1", port)


async def test_server_name_localhost_is_matched(pki: Pki) -> None:
    async with tls_server(pki.leaf(days=100)) as port:
        result = await run_check(
            TlsCert,
            {
                "host": "127.0.0.1",
                "port": port,
                "server_name": "localhost",
                "ca_file": str(pki.ca_file),
            },
        )

    assert result.status is Status.OK, result.message


async def test_fewer_days_than_min_days_fails(pki: Pki) -> None:
    async with tls_server(pki.leaf(days=5)) as port:
        result = await run_check(
            TlsCert,
            {"host": "127.0.0.1", "port": port, "ca_file": str(pki.ca_file), "min_days": 14},
        )

    assert result.status is Status.FAIL
    assert result.message is not None
    assert "expires in 5.0 days" in result.message
    assert "fewer than min_days 14" in result.message
    assert result.fields["days_left"] == pytest.approx(5.0, abs=0.1)


async def test_min_days_below_what_is_left_passes(pki: Pki) -> None:
    async with tls_server(pki.leaf(days=5)) as port:
        result = await run_check(
            TlsCert,
            {"host": "127.0.0.1", "port": port, "ca_file": str(pki.ca_file), "min_days": 3},
        )

    assert result.status is Status.OK, result.message


@pytest.mark.parametrize("verify", [True, False], ids=["verified", "unverified"])
async def test_expired_fails_with_negative_days(pki: Pki, verify: bool) -> None:
    async with tls_server(pki.leaf(days=-3)) as port:
        result = await run_check(
            TlsCert,
            {"host": "127.0.0.1", "port": port, "ca_file": str(pki.ca_file), "verify": verify},
        )

    assert result.status is Status.FAIL
    assert result.message is not None
    assert result.message.startswith("certificate expired 3.0 days ago (")
    assert result.fields["days_left"] == pytest.approx(-3.0, abs=0.1)


@pytest.mark.parametrize(
    ("self_signed", "options", "reason"),
    [
        pytest.param(True, {}, "self-signed certificate", id="self-signed"),
        pytest.param(
            False, {}, "unable to get local issuer certificate", id="ca-not-in-system-store"
        ),
        pytest.param(
            False,
            {"server_name": "wrong.example", "use_test_ca": True},
            "Hostname mismatch, certificate is not valid for 'wrong.example'",
            id="wrong-name",
        ),
    ],
)
async def test_untrusted_fails_naming_the_reason_and_still_reports_days(
    pki: Pki, self_signed: bool, options: dict[str, object], reason: str
) -> None:
    opts = dict(options)
    if opts.pop("use_test_ca", False):
        opts["ca_file"] = str(pki.ca_file)
    async with tls_server(pki.leaf(days=100, self_signed=self_signed)) as port:
        result = await run_check(TlsCert, {"host": "127.0.0.1", "port": port, **opts})

    assert result.status is Status.FAIL
    assert result.message is not None
    assert result.message.startswith("certificate verification failed: ")
    assert reason in result.message
    assert 99.9 <= result.fields["days_left"] <= 100.0
    assert result.fields["subject"] == "CN=localhost,O=runner tests"


async def test_self_signed_without_verify_is_ok(pki: Pki) -> None:
    async with tls_server(pki.leaf(days=100, self_signed=True)) as port:
        result = await run_check(TlsCert, {"host": "127.0.0.1", "port": port, "verify": False})

    assert result.status is Status.OK, result.message
    assert result.fields["issuer"] == result.fields["subject"] == "CN=localhost,O=runner tests"


async def test_closed_port_is_an_error() -> None:
    port = closed_port()

    result = await run_check(TlsCert, {"host": "127.0.0.1", "port": port})

    assert result.status is Status.ERROR
    assert result.message == "cannot connect: connection refused (nothing listens on that port?)"
    assert result.fields["error_type"] == "ConnectionRefusedError"
    assert "days_left" not in result.fields
    assert (result.fields["host"], result.fields["port"]) == ("127.0.0.1", port)


async def test_a_name_that_does_not_resolve_says_so_for_the_offline_hint() -> None:
    # .invalid never resolves (RFC 6761), with or without a network.
    options = {"host": "cert.runner-test.invalid"}
    assert TlsCert.target_host(TlsCert.Options.model_validate(options)) == options["host"]

    result = await run_check(TlsCert, options)

    assert result.status is Status.ERROR
    assert result.message is not None and result.message.startswith(
        "cannot connect: cannot resolve host: "
    )
    assert result.fields[UNRESOLVED_HOST] == "cert.runner-test.invalid"


async def test_a_port_without_tls_is_an_error() -> None:
    async with plain_tcp_server() as port:
        result = await run_check(TlsCert, {"host": "127.0.0.1", "port": port})

    assert result.status is Status.ERROR
    assert result.message is not None
    assert result.message.startswith(
        ("cannot connect: TLS error: ", "cannot connect: connection reset by the server")
    )
    assert "days_left" not in result.fields


async def test_a_ca_file_that_is_not_pem_is_an_error(tmp_path: Path) -> None:
    bundle = tmp_path / "not-a-bundle.pem"
    bundle.write_text("hello\n")

    result = await run_check(TlsCert, {"host": "127.0.0.1", "port": 1, "ca_file": str(bundle)})

    assert result.status is Status.ERROR
    assert result.message is not None
    assert result.message.startswith(f"cannot load ca_file {str(bundle)!r}: ")


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="no-host"),
        pytest.param({"host": "example.com", "port": 0}, id="port-0"),
        pytest.param({"host": "example.com", "min_days": -1}, id="negative-min-days"),
        pytest.param({"host": "example.com", "ca_file": "/nonexistent/ca.pem"}, id="no-ca-file"),
        pytest.param({"host": "example.com", "hostname": "x"}, id="unknown-key"),
    ],
)
def test_invalid_options_are_rejected(options: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TlsCert.Options.model_validate(options)


async def test_through_the_daemon(pki: Pki, tmp_path: Path) -> None:
    config = tmp_path / "tls.yaml"
    async with tls_server(pki.leaf(days=100)) as port:
        config.write_text(
            "jobs:\n"
            "  - name: cert\n"
            "    plugin: tls-cert\n"
            "    options:\n"
            "      host: 127.0.0.1\n"
            f"      port: {port}\n"
            f"      ca_file: {json.dumps(str(pki.ca_file))}\n"
        )
        # Not subprocess.run: this event loop has to keep serving the handshake.
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "runner",
            "run",
            str(config),
            "--log-format",
            "json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            stdout, stderr = await proc.communicate()

    output = stdout.decode()
    assert proc.returncode == 0, output + stderr.decode()
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    (finished,) = [e for e in events if e["event"] == "job.finished"]
    assert finished["job"] == "cert"
    assert finished["plugin"] == "tls-cert"
    assert finished["status"] == "ok"
    assert 99.9 <= finished["days_left"] <= 100.0
    assert finished["subject"] == "CN=localhost,O=runner tests"


def test_listed_by_runner_plugins() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "plugins"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    label = f"tls-cert  (runner-tls-cert {version('runner-tls-cert')})  check"
    assert label in proc.stdout.splitlines(), proc.stdout + proc.stderr

"""sd_notify against real datagram sockets standing in for systemd's."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from runner.systemd import SystemdNotifier

NotifierAndSocket = tuple[SystemdNotifier, socket.socket]

Receiver = tuple[socket.socket, str]


def parse(datagram: bytes) -> dict[str, str]:
    """One notify message as a dict; fails on a line that is not KEY=VALUE."""
    fields = {}
    for line in datagram.decode().split("\n"):
        key, sep, value = line.partition("=")
        assert sep, f"not a KEY=VALUE line: {line!r}"
        fields[key] = value
    return fields


def receive(sock: socket.socket) -> dict[str, str]:
    return parse(sock.recv(4096))


@pytest.fixture
def make_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Receiver]]:
    """Binds a datagram socket as systemd would and returns it with its NOTIFY_SOCKET value."""
    socks: list[socket.socket] = []

    def make(kind: str) -> Receiver:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        socks.append(sock)
        sock.settimeout(2)
        if kind == "path":
            # A short folder: socket paths are limited to 107 bytes.
            path = str(tmp_path_factory.mktemp("sd") / "notify")
            sock.bind(path)
            return sock, path
        name = f"runner-test-{uuid.uuid4().hex}"
        sock.bind(b"\0" + name.encode())
        return sock, "@" + name

    yield make
    for sock in socks:
        sock.close()


@pytest.fixture(params=["path", "abstract"])
def systemd(request: pytest.FixtureRequest, make_receiver: Callable[[str], Receiver]) -> Receiver:
    return make_receiver(request.param)


@pytest.fixture
def notifier_for(systemd: Receiver) -> Iterator[tuple[SystemdNotifier, socket.socket]]:
    sock, address = systemd
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": address})
    yield notifier, sock
    notifier.close()


def test_messages_arrive_as_sent(notifier_for: NotifierAndSocket) -> None:
    notifier, sock = notifier_for
    assert notifier.enabled

    notifier.ready()
    assert receive(sock) == {"READY": "1"}
    notifier.ready(status="3 jobs")
    assert receive(sock) == {"READY": "1", "STATUS": "3 jobs"}
    notifier.status("reloading config")
    assert receive(sock) == {"STATUS": "reloading config"}
    notifier.watchdog()
    assert receive(sock) == {"WATCHDOG": "1"}
    notifier.stopping()
    assert receive(sock) == {"STOPPING": "1"}
    notifier.stopping("SIGTERM")
    assert receive(sock) == {"STOPPING": "1", "STATUS": "SIGTERM"}
    assert notifier.send(EXTEND_TIMEOUT_USEC=5_000_000, STATUS="slow start") is True
    assert sock.recv(4096) == b"EXTEND_TIMEOUT_USEC=5000000\nSTATUS=slow start"


def test_reloading_carries_monotonic_usec(
    notifier_for: tuple[SystemdNotifier, socket.socket],
) -> None:
    notifier, sock = notifier_for
    before = time.monotonic_ns() // 1000
    notifier.reloading()
    after = time.monotonic_ns() // 1000
    message = receive(sock)
    assert message.keys() == {"RELOADING", "MONOTONIC_USEC"}
    assert message["RELOADING"] == "1"
    assert before <= int(message["MONOTONIC_USEC"]) <= after


def test_newlines_in_status_are_sanitised(
    notifier_for: tuple[SystemdNotifier, socket.socket],
) -> None:
    notifier, sock = notifier_for
    notifier.status("line one\nREADY=1\r\nline three")
    assert receive(sock) == {"STATUS": "line one READY=1 line three"}
    notifier.ready("a\nb")
    assert receive(sock) == {"READY": "1", "STATUS": "a b"}


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = SystemdNotifier.from_environ({"WATCHDOG_USEC": "2000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert notifier.send(READY=1) is False
    notifier.ready("up")
    notifier.reloading()
    notifier.status("x")
    notifier.watchdog()
    notifier.stopping()
    notifier.close()


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        pytest.param({"WATCHDOG_USEC": "2000000"}, 1.0, id="usec"),
        pytest.param(
            {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 1.0, id="own-pid"
        ),
        pytest.param(
            {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None, id="other-pid"
        ),
        pytest.param({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "me"}, None, id="garbage-pid"),
        pytest.param({"WATCHDOG_USEC": "soon"}, None, id="garbage-usec"),
        pytest.param({"WATCHDOG_USEC": "0"}, None, id="zero-usec"),
        pytest.param({"WATCHDOG_USEC": "-5"}, None, id="negative-usec"),
        pytest.param({}, None, id="unset"),
    ],
)
def test_watchdog_interval(
    make_receiver: Callable[[str], Receiver], env: dict[str, str], interval: float | None
) -> None:
    _, address = make_receiver("abstract")
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": address, **env})
    assert notifier.watchdog_interval == interval
    notifier.close()


def test_real_environment_is_read_and_cleared(
    monkeypatch: pytest.MonkeyPatch, make_receiver: Callable[[str], Receiver]
) -> None:
    sock, address = make_receiver("abstract")
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = SystemdNotifier.from_environ()
    assert notifier.enabled
    assert notifier.watchdog_interval == 2.0
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        assert name not in os.environ
    notifier.watchdog()
    assert receive(sock) == {"WATCHDOG": "1"}
    notifier.close()


def test_explicit_environ_leaves_os_environ_alone(
    monkeypatch: pytest.MonkeyPatch, make_receiver: Callable[[str], Receiver]
) -> None:
    _, address = make_receiver("path")
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    SystemdNotifier.from_environ({"NOTIFY_SOCKET": address}).close()
    assert os.environ["NOTIFY_SOCKET"] == address


def test_missing_socket_fails_quietly_and_logs_once(tmp_path: Path) -> None:
    path = tmp_path / "gone"
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": str(path)})
    assert notifier.enabled
    with capture_logs() as logs:
        for _ in range(5):
            assert notifier.send(WATCHDOG=1) is False
            notifier.watchdog()
            notifier.ready("up")
    assert [log["event"] for log in logs] == ["notify.failed"]
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["socket"] == str(path)
    assert "No such file" in logs[0]["error"]

    # systemd comes back: sends succeed, and the next outage is logged again.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.bind(str(path))
        assert notifier.send(WATCHDOG=1) is True
        assert receive(sock) == {"WATCHDOG": "1"}
    path.unlink()
    with capture_logs() as logs:
        assert notifier.send(WATCHDOG=1) is False
        assert notifier.send(WATCHDOG=1) is False
    assert [log["event"] for log in logs] == ["notify.failed"]
    notifier.close()


def test_full_receiver_drops_messages_without_blocking(
    make_receiver: Callable[[str], Receiver],
) -> None:
    sock, address = make_receiver("abstract")
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": address})
    with capture_logs() as logs:
        # Nobody reads: the kernel queue fills and a send is refused instead of blocking.
        results = [notifier.send(STATUS="x" * 1000) for _ in range(5000)]
    assert False in results
    assert [log["event"] for log in logs] == ["notify.failed"]
    assert receive(sock) == {"STATUS": "x" * 1000}
    notifier.close()


@pytest.mark.parametrize(
    "address",
    [pytest.param("relative/notify", id="relative"), pytest.param("vsock:2:1234", id="vsock")],
)
def test_unsupported_address_disables(address: str) -> None:
    with capture_logs() as logs:
        notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": address})
    assert not notifier.enabled
    assert notifier.send(READY=1) is False
    assert [log["event"] for log in logs] == ["notify.failed"]


def test_invalid_field_name_is_refused(notifier_for: NotifierAndSocket) -> None:
    notifier, sock = notifier_for
    with capture_logs() as logs:
        assert notifier.send(**{"READY=1\nSTATUS": "x"}) is False
    assert [log["event"] for log in logs] == ["notify.failed"]
    notifier.status("still works")
    assert receive(sock) == {"STATUS": "still works"}


def test_close_disables_and_is_idempotent(
    notifier_for: tuple[SystemdNotifier, socket.socket],
) -> None:
    notifier, _ = notifier_for
    notifier.close()
    notifier.close()
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert notifier.send(READY=1) is False

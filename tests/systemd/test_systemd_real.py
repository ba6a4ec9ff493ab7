"""The shipped units under a real systemd 252, booted once for this module.

systemd runs as PID 1 of throwaway namespaces over an overlay of ``/``
(tests/systemd/systemd_boot.py); runner is installed into it as systemd/README.md
says, and everything below is asked of that systemd with ``systemctl`` and
``journalctl``, as an operator would. Two things differ from a host, both
said where they matter: the dependencies are this environment's (linked, not
downloaded), and the watchdog test shortens ``WatchdogSec=`` in a drop-in.

Skipped without root (or without systemd, overlayfs or cgroup2), failed
instead under CI (``$CI`` set), where they must run.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from systemd_boot import PROJECT, UNITS, VENV, Machine, booted_systemd, missing_prerequisites

pytestmark = pytest.mark.systemd

RUNNER = f"{VENV}/bin/runner"
SITE = "/srv/site"
PORT = 8080
HTTP_PORT = 9150
PAGE_TITLE = "runner under systemd"
#: The levels ``journalctl -p warning`` must show, and the priority each is filed at.
WARNING_OR_WORSE = {"warning": 4, "error": 3, "critical": 2}

CONFIG = f"""
    http:
      listen: 127.0.0.1:{HTTP_PORT}
    jobs:
      - name: site
        plugin: file-server
        options:
          directory: {SITE}
          port: {PORT}
      - name: site-status
        plugin: http-status
        interval: 1s
        options:
          url: http://127.0.0.1:{PORT}/
      - name: site-title
        plugin: page-title
        interval: 2s
        timeout: 20s
        options:
          url: http://127.0.0.1:{PORT}/
          expect_title: {PAGE_TITLE}
      # A fail (warning) and an error, for journalctl -p warning.
      - name: expects-404
        plugin: http-status
        interval: 1s
        options:
          url: http://127.0.0.1:{PORT}/
          expect_status: [404]
      - name: nothing-listens
        plugin: http-status
        interval: 1s
        options:
          url: http://127.0.0.1:9/
"""

#: A malformed request to the HTTP endpoint: aiohttp used to log it through the
#: logging module's last resort, a traceback on stderr.
BAD_REQUEST = f"""
import socket
s = socket.create_connection(("127.0.0.1", {HTTP_PORT}), timeout=5)
s.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: -1\\r\\n\\r\\n")
assert s.recv(1024).startswith(b"HTTP/1.0 400")
"""

#: A client that asks for a large file and goes away after the first bytes (as
#: Chromium does with a favicon it no longer wants); prints its own port.
DROPPING_CLIENT = f"""
import socket
s = socket.create_connection(("127.0.0.1", {PORT}), timeout=5)
s.sendall(b"GET /big.bin HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n")
assert s.recv(1024).startswith(b"HTTP/1.0 200")
print(s.getsockname()[1])
s.close()  # unread data: the kernel answers the server with RST
"""


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# --------------------------------------------------------------------------- the machine


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    reason = missing_prerequisites()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"cannot boot systemd under CI: {reason}", pytrace=False)
        pytest.skip(reason)
    with booted_systemd(tmp_path_factory.mktemp("systemd")) as booted:
        booted.write(
            f"{SITE}/index.html", f"<html><head><title>{PAGE_TITLE}</title></head></html>\n"
        )
        booted.run("sh", "-c", f"head -c 33554432 /dev/zero > {SITE}/big.bin")
        # systemd/README.md, "Install", steps 3 and 4 (steps 1 and 2, the venv and
        # Chromium, are done: booted_systemd installs runner, Chromium is the host's).
        booted.run("install", "-d", "/etc/runner")
        booted.run("install", "-m", "0644", "/dev/stdin", "/etc/runner/runner.yaml",
                   input=dedent(CONFIG))  # fmt: skip
        booted.run(RUNNER, "check", "/etc/runner/runner.yaml")
        for unit in ("runner.service", "runner@.service"):
            booted.run("cp", f"{UNITS}/{unit}", "/etc/systemd/system/")
        booted.systemctl("daemon-reload")
        yield booted


def cursor(machine: Machine) -> str:
    """The journal's current end, to read only what comes after."""
    out = machine.run("journalctl", "-n", "0", "--show-cursor", "--no-pager").stdout
    found = re.search(r"-- cursor: (\S+)", out)
    assert found, out
    return found[1]


def message(record: dict[str, Any]) -> str:
    value = record.get("MESSAGE", "")
    # journalctl -o json gives a message that is not clean UTF-8 as a byte list.
    return bytes(value).decode(errors="replace") if isinstance(value, list) else str(value)


def daemon_records(
    machine: Machine, identifier: str = "runner", *args: str, after: str | None = None
) -> list[dict[str, Any]]:
    """The daemon's own journal records (its stdout and stderr), not systemd's about it."""
    extra = [f"--after-cursor={after}"] if after else []
    return machine.journal("-t", identifier, *extra, *args)


def events(
    machine: Machine, identifier: str = "runner", after: str | None = None
) -> list[dict[str, Any]]:
    """The daemon's log events; fails on any line that is not a JSON object."""
    found = []
    for record in daemon_records(machine, identifier, after=after):
        text = message(record)
        try:
            event = json.loads(text)
        except ValueError:
            raise AssertionError(f"not a JSON line in the journal: {text!r}") from None
        assert isinstance(event, dict), text
        found.append(event)
    return found


def wait_for_event(
    machine: Machine,
    identifier: str = "runner",
    after: str | None = None,
    timeout: float = 60,  # a deadline, not a delay: generous for a busy CI machine
    count: int = 1,
    **match: Any,
) -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]] | None:
        hits = [
            e
            for e in events(machine, identifier, after)
            if all(e.get(k) == v for k, v in match.items())
        ]
        return hits if len(hits) >= count else None

    try:
        result: list[dict[str, Any]] = machine.wait_for(found, timeout, f"{match} in the journal")
    except AssertionError as exc:
        out = machine.run("journalctl", "-n", "300", "--no-pager", "-o", "short-monotonic")
        tail = [line for line in out.stdout.splitlines() if '"job.finished"' not in line][-40:]
        raise AssertionError(
            f"{exc}; the journal's end, without job.finished:\n" + "\n".join(tail)
        ) from None
    return result


def systemd_says(machine: Machine, unit: str, after: str | None = None) -> list[str]:
    """What systemd itself logged about ``unit``."""
    extra = [f"--after-cursor={after}"] if after else []
    return [message(r) for r in machine.journal("-u", unit, "-t", "systemd", *extra)]


def main_pid(machine: Machine, unit: str) -> int:
    return int(machine.show(unit, "MainPID")["MainPID"])


def cgroup_pids(machine: Machine, unit: str) -> set[int]:
    path = f"/sys/fs/cgroup/system.slice/{unit}/cgroup.procs"
    proc = machine.run("cat", path, check=False)
    return {int(p) for p in proc.stdout.split()} if proc.returncode == 0 else set()


def command(machine: Machine, pid: int) -> str:
    return machine.run("cat", f"/proc/{pid}/comm", check=False).stdout.strip()


def server_side_open(machine: Machine, client_port: int) -> bool:
    """Whether the file server still holds a TCP connection from ``client_port``
    (read from /proc/net/tcp of the machine's network namespace)."""
    for line in Path(f"/proc/{machine.pid}/net/tcp").read_text().splitlines()[1:]:
        local, remote = line.split()[1:3]
        if local.endswith(f":{PORT:04X}") and remote.endswith(f":{client_port:04X}"):
            return True
    return False


def start(machine: Machine, unit: str) -> None:
    """Start ``unit`` unless it runs (tests may run alone, in any order)."""
    machine.systemctl("start", unit)
    assert machine.show(unit, "SubState")["SubState"] == "running"


# --------------------------------------------------------------------------- the tests


def test_start_returns_once_the_daemon_is_ready(machine: Machine) -> None:
    before = cursor(machine)
    machine.systemctl("enable", "--now", "runner")  # systemd/README.md, step 4

    # Type=notify: start returned only after READY=1, which the daemon sends
    # once its services are bound. So the file server answers straight away...
    page = machine.run(
        "/usr/bin/python3",
        "-c",
        f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{PORT}/').read())",
    )
    assert PAGE_TITLE in page.stdout
    state = machine.show("runner", "ActiveState", "SubState", "StatusText", "UnitFileState")
    assert state["ActiveState"] == "active" and state["SubState"] == "running"
    assert state["UnitFileState"] == "enabled"
    # ...STATUS= came with READY=1...
    assert state["StatusText"].startswith("4 checks, 1 services"), state
    # ...and systemd said "Started" after the daemon said it had started.
    started = wait_for_event(machine, after=before, event="daemon.started")[0]
    record = next(
        r
        for r in machine.journal("-u", "runner", "-t", "systemd", f"--after-cursor={before}")
        if message(r).startswith("Started runner.service")
    )
    started_by_systemd = int(record["_SOURCE_REALTIME_TIMESTAMP"]) / 1e6
    assert datetime.fromisoformat(started["timestamp"]).timestamp() <= started_by_systemd


def test_reload_applies_a_diff_and_refuses_a_broken_config(machine: Machine) -> None:
    start(machine, "runner")
    pid = main_pid(machine, "runner")
    extra = """
      - name: nap
        plugin: sleep
        interval: 1s
        options:
          seconds: 0.1
    """
    try:
        before = cursor(machine)
        machine.write(
            "/etc/runner/runner.yaml", dedent(CONFIG) + textwrap.indent(dedent(extra), "  ")
        )
        machine.systemctl("reload", "runner")
        # systemd 252's ExecReload= does not wait for the daemon: the log says.
        (reloaded,) = wait_for_event(machine, after=before, event="daemon.reloaded")
        assert reloaded["added"] == ["nap"] and reloaded["removed"] == []
        assert reloaded["changed"] == []
        assert "site" in reloaded["kept"]
        wait_for_event(machine, after=before, event="job.finished", job="nap")
        assert main_pid(machine, "runner") == pid

        before = cursor(machine)
        machine.write("/etc/runner/runner.yaml", dedent(CONFIG) + "  - name: [broken\n")
        machine.systemctl("reload", "runner")
        (refused,) = wait_for_event(machine, after=before, event="reload.refused")
        assert refused["level"] == "error"
        assert refused["config"] == "/etc/runner/runner.yaml"
        # The old config, nap included, goes on in the same process.
        wait_for_event(machine, after=before, event="job.finished", job="nap", count=2)
        assert main_pid(machine, "runner") == pid
        assert machine.show("runner", "ActiveState")["ActiveState"] == "active"
        assert "reload refused" in machine.show("runner", "StatusText")["StatusText"]
    finally:
        machine.write("/etc/runner/runner.yaml", dedent(CONFIG))
        machine.systemctl("reload", "runner")


def test_journal_holds_only_json_and_filters_by_priority(machine: Machine) -> None:
    start(machine, "runner")
    before = cursor(machine)
    # Clients that drop the file server's answer: socketserver used to print a
    # 31-line traceback per drop into the journal.
    for _ in range(3):
        port = int(machine.run("/usr/bin/python3", "-c", DROPPING_CLIENT).stdout)
        # The server's side of the connection is gone once its handler has
        # finished, error reporting included.
        machine.wait_for(
            lambda port=port: not server_side_open(machine, port),
            10,
            f"the server to close the connection from port {port}",
        )
    machine.run("/usr/bin/python3", "-c", BAD_REQUEST)
    # Only this request makes aiohttp log (no other test sends a malformed one),
    # so the whole journal is searched: after the earlier tests, reading from a
    # cursor here found nothing in a checkout under /tmp (not understood yet).
    wait_for_event(machine, event="library.log", logger="aiohttp.server")
    # A fail and an error have been logged by now, and again after the drops.
    wait_for_event(machine, after=before, event="job.finished", job="expects-404")
    wait_for_event(machine, after=before, event="job.finished", job="nothing-listens")

    # Everything the daemon wrote is a JSON line (events() fails otherwise)...
    assert events(machine)
    unit_log = machine.run("journalctl", "-u", "runner", "--no-pager", "-o", "cat").stdout
    assert "Traceback" not in unit_log and "Exception occurred" not in unit_log

    # ...and -p warning shows its warnings and errors, each at its priority, nothing else.
    shown = daemon_records(machine, "runner", "-p", "warning")
    levels = set()
    for record in shown:
        event = json.loads(message(record))
        assert event["level"] in WARNING_OR_WORSE, event
        assert int(record["PRIORITY"]) == WARNING_OR_WORSE[event["level"]], (record, event)
        levels.add(event["level"])
    assert {"warning", "error"} <= levels
    fails = [json.loads(message(r)) for r in shown]
    assert {e["job"] for e in fails if e["event"] == "job.finished"} >= {
        "expects-404",
        "nothing-listens",
    }
    assert not any(e.get("job") == "site-status" for e in fails)


def test_watchdog_restarts_a_stopped_daemon(machine: Machine) -> None:
    unit = "runner@watchdog.service"
    machine.write(
        "/etc/runner/watchdog.yaml",
        dedent(
            """
            jobs:
              - name: nap
                plugin: sleep
                interval: 1s
                options:
                  seconds: 0.1
            """
        ),
    )
    # The shipped 30 s would make this test wait 35 s; what is tested is the
    # mechanism (WATCHDOG_USEC, pings from the loop, the restart), not the number.
    machine.write(
        f"/etc/systemd/system/{unit}.d/test.conf",
        # 3 s: pings every 1.5 s leave room for a loaded machine.
        "[Service]\nWatchdogSec=3s\nRestartSec=1s\n",
    )
    machine.systemctl("daemon-reload")
    try:
        before = cursor(machine)
        start(machine, unit)
        stopped = main_pid(machine, unit)
        # Pings keep it alive past its watchdog interval.
        wait_for_event(machine, "runner@watchdog", before, count=5, event="job.finished")
        assert main_pid(machine, unit) == stopped

        machine.run("kill", "-STOP", str(stopped))
        restarted = machine.wait_for(
            lambda: (pid := main_pid(machine, unit)) not in (0, stopped) and pid,
            20,
            "a new main process",
        )
        wait_for_event(machine, "runner@watchdog", before, count=2, event="daemon.started")
        said = systemd_says(machine, unit, before)
        assert any("Watchdog timeout" in line for line in said), said
        state = machine.show(unit, "NRestarts", "SubState")
        assert state == {"NRestarts": "1", "SubState": "running"}
        assert command(machine, restarted) == "runner"
    finally:
        machine.systemctl("stop", unit)
        machine.run("rm", "-r", f"/etc/systemd/system/{unit}.d")
        machine.systemctl("daemon-reload")


def test_stop_leaves_an_empty_cgroup(machine: Machine) -> None:
    start(machine, "runner")
    before = cursor(machine)
    # page-title has a browser running: Chromium and Playwright's node driver.
    wait_for_event(machine, after=before, event="job.finished", job="site-title", status="ok")
    pids = cgroup_pids(machine, "runner.service")
    commands = {command(machine, pid) for pid in pids}
    assert {"runner", "chromium"} <= commands, commands
    assert any(c.startswith("node") for c in commands), commands  # "node-MainThread"

    began = time.monotonic()
    machine.systemctl("stop", "runner")
    took = time.monotonic() - began

    assert not cgroup_pids(machine, "runner.service")
    assert machine.run("test", "-e", "/sys/fs/cgroup/system.slice/runner.service",
                       check=False).returncode == 1  # fmt: skip
    assert all(machine.run("test", "-e", f"/proc/{pid}", check=False).returncode for pid in pids)
    # Exit 0: the daemon stopped cleanly, its browser killed alongside it.
    state = machine.show("runner", "Result", "ExecMainStatus", "ActiveState")
    assert state == {"Result": "success", "ExecMainStatus": "0", "ActiveState": "inactive"}
    stopped = wait_for_event(machine, after=before, event="daemon.stopped")
    assert stopped
    print(f"systemctl stop with a browser running: {took:.2f} s")


def test_security_score_is_what_the_readme_says(machine: Machine) -> None:
    readme = (PROJECT / "systemd" / "README.md").read_text()
    claimed = re.search(r"rates both units \*\*(\d+\.\d+)", readme)
    assert claimed, "systemd/README.md no longer states the exposure score"
    for unit in ("runner.service", "runner@site-checks.service"):
        out = machine.run("systemd-analyze", "security", "--no-pager", unit).stdout
        found = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d+)", out)
        assert found, out
        assert found[1] == claimed[1], f"{unit}: {found[1]} live, README says {claimed[1]}"


def test_template_instances_are_separate_users(machine: Machine) -> None:
    config = """
        jobs:
          - name: nap
            plugin: sleep
            interval: 1s
            options:
              seconds: 0.1
    """
    names = ("alpha", "beta")
    for name in names:
        machine.write(f"/etc/runner/{name}.yaml", dedent(config))
    try:
        before = cursor(machine)
        for name in names:
            start(machine, f"runner@{name}")
        start(machine, "runner")
        shown = {
            unit: machine.show(unit, "User", "UID", "MainPID")
            for unit in ("runner@alpha", "runner@beta", "runner")
        }
        uids = {u: int(s["UID"]) for u, s in shown.items()}
        pids = {u: int(s["MainPID"]) for u, s in shown.items()}

        # From inside one instance (its mount namespace, its /proc, its user and
        # no capabilities), the others can neither be seen nor signalled.
        # kill(pid, 0) is checked exactly like a real signal, and kills nobody
        # when the check is wrong, so one run reports every leak.
        probe = """
import json, os, sys
me, *others = map(int, sys.argv[1:])
def signalled(pid):
    try:
        os.kill(pid, 0)
        return True
    except PermissionError:
        return False
print(json.dumps({
    "own": signalled(me),
    "visible": [pid for pid in others if os.path.exists(f"/proc/{pid}")],
    "signalled": [pid for pid in others if signalled(pid)],
}))
"""
        for unit, pid in pids.items():
            others = [str(p) for u, p in pids.items() if u != unit]
            uid = str(uids[unit])
            out = machine.run(
                "nsenter", "-t", str(pid), "-m", "-S", uid, "-G", uid, "--",
                "/usr/bin/python3", "-c", probe, str(pid), *others,
            )  # fmt: skip
            seen = json.loads(out.stdout)
            assert seen == {"own": True, "visible": [], "signalled": []}, (unit, pids, seen)
        assert {u: main_pid(machine, u) for u in pids} == pids  # nobody was killed
        assert [shown[u]["User"] for u in shown] == ["runner-alpha", "runner-beta", "runner"]
        assert len(set(uids.values())) == 3, uids
        for unit, pid in pids.items():
            status = machine.run("cat", f"/proc/{pid}/status").stdout
            assert re.search(rf"^Uid:\s+{uids[unit]}\s", status, re.M), (unit, status)

        # StateDirectory= per instance: history in /var/lib/runner-NAME, owned
        # by that instance's user only.
        for name in names:
            wait_for_event(machine, f"runner@{name}", before, event="job.finished")
            history = f"/var/lib/runner-{name}/{name}.sqlite3"
            owner = machine.run("stat", "-L", "-c", "%u %a", history).stdout.split()
            assert owner == [str(uids[f"runner@{name}"]), "600"], (history, owner)
        private = machine.run("stat", "-c", "%u %a", "/var/lib/private").stdout.split()
        assert private == ["0", "700"]
    finally:
        for name in names:
            machine.systemctl("stop", f"runner@{name}")


@pytest.mark.parametrize(
    ("instance", "starts"),
    [
        pytest.param("a" * 24, True, id="24-characters"),
        pytest.param("a" * 25, False, id="25-characters"),
        pytest.param("site.checks", False, id="dot"),
    ],
)
def test_instance_names_make_valid_user_names(
    machine: Machine, instance: str, starts: bool
) -> None:
    """systemd/README.md: instance names are at most 24 of [A-Za-z0-9_-]."""
    unit = f"runner@{instance}.service"
    machine.write(
        f"/etc/runner/{instance}.yaml",
        dedent("jobs:\n  - name: nap\n    plugin: sleep\n    interval: 1h\n"),
    )
    try:
        proc = machine.systemctl("start", unit, check=False)
        assert (proc.returncode == 0) == starts, proc.stderr
        if not starts:
            assert machine.show(unit, "Result")["Result"] == "resources"
    finally:
        machine.systemctl("stop", unit, check=False)
        machine.systemctl("reset-failed", unit, check=False)

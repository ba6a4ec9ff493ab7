"""No process outlives runner, and as PID 1 runner reaps the orphans Chromium leaves.

The counting process makes itself a child subreaper, so orphans come back to it
rather than to init. The PID namespace is real (``unshare --pid --fork
--mount-proc``, which needs root); the browser is really killed from outside
and relaunched by the next run.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from helpers import (
    RunnerProcess,
    chromium_browsers,
    descendants,
    local_http_server,
    processes,
    wait_for_count,
    wait_until,
)

needs_namespace = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="a PID namespace needs root and unshare(1)",
)

#: A wrapper that makes itself a child subreaper and runs the command after it
#: (``runner ...``) with the same stdout, forwarding SIGTERM and SIGINT. Once
#: the command exits it reaps whatever came back to it and writes, to the file
#: named by $SUBREAPER_REPORT, the exit code, how many orphans it adopted and
#: the command lines of children still alive 3 s later. A process of its own,
#: so the test session never becomes a subreaper.
_SUBREAPER = """
import ctypes, json, os, signal, subprocess, sys, time
PR_SET_CHILD_SUBREAPER = 36
assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL)
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda signum, frame: child.send_signal(signum))
code = child.wait()
adopted, deadline = 0, time.monotonic() + 3
while True:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid = 0
        if pid == 0:
            break
        adopted += 1
    live = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as f:
            live += [int(p) for p in f.read().split()]
    if not live or time.monotonic() > deadline:
        break
    time.sleep(0.05)
def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\\0", b" ").decode()
    except OSError:
        return "?"
with open(os.environ["SUBREAPER_REPORT"], "w") as report:
    json.dump({"code": code, "adopted": adopted, "live": [cmdline(p) for p in live]}, report)
sys.exit(code)
"""
SUBREAPER = (sys.executable, "-c", _SUBREAPER)


class _Site(BaseHTTPRequestHandler):
    """/ok answers at once; /hang only when the test ends (counting how many wait);
    /busy runs a script that never yields."""

    hanging = 0

    def do_GET(self) -> None:
        if self.path == "/hang":
            type(self).hanging += 1
            self.server.release.wait(30)  # type: ignore[attr-defined]
            return
        body = {
            "/ok": b"<title>Local page</title>ok",
            "/busy": b"<title>Busy</title><script>while (true) {}</script>",
        }.get(self.path, b"<title>Missing</title>")
        self.send_response(200 if body != b"<title>Missing</title>" else 404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


UNSHARE = ("unshare", "--pid", "--fork", "--mount-proc", "--kill-child")


@pytest.fixture
def site() -> Iterator[str]:
    with local_http_server() as url:
        yield url


@pytest.fixture
def hanging_site() -> Iterator[str]:
    _Site.hanging = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    server.daemon_threads = True
    server.release = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.release.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()


def _report(path: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(path.read_text())
    # What the subreaper adopted shows that it did see Chromium's orphans.
    assert report["adopted"] > 0, report
    assert report["live"] == [], report
    return report


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return None


def _init_pid(unshare_pid: int) -> int:
    """The host pid of the namespace's PID 1 (unshare's only child)."""
    children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def _zombies(pids: set[int]) -> set[int]:
    return {pid for pid in pids if _state(pid) == "Z"}


def _orphaned_zombies(pid1: int) -> set[int]:
    """Zombies whose parent is the namespace's PID 1."""
    found = set()
    for pid in _zombies(descendants(pid1)):
        try:
            ppid = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1]
        except OSError:  # reaped meanwhile
            continue
        if ppid == str(pid1):
            found.add(pid)
    return found


def _config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "pid1.yaml"
    config.write_text(
        "history: {enabled: false}\n"
        "jobs:\n"
        "  - name: page\n"
        "    plugin: page-title\n"
        "    interval: 500ms\n"
        "    timeout: 15s\n"
        f"    options: {{url: '{url}/ok', expect_title: Local page}}\n"
    )
    return config


def test_runner_run_with_browser_jobs_leaves_no_process(tmp_path: Path, site: str) -> None:
    config = tmp_path / "browsers.yaml"
    config.write_text(
        "history: {enabled: false}\n"
        "jobs:\n"
        "  - name: title\n"
        "    plugin: page-title\n"
        f"    options: {{url: '{site}/ok', expect_title: Local page}}\n"
        "  - name: steps\n"
        "    plugin: browser-steps\n"
        f"    options: {{steps: [{{goto: '{site}/ok'}}, {{expect_title: Local page}}]}}\n"
        "  - name: failing\n"
        "    plugin: page-title\n"
        f"    options: {{url: '{site}/error', expect_title: Local page}}\n"
    )
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [*SUBREAPER, sys.executable, "-m", "runner", "run", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "SUBREAPER_REPORT": str(report)},
        timeout=90,
    )
    assert proc.returncode == 1, proc.stderr  # the failing job
    _report(report)


def test_serve_stopped_in_the_middle_of_ten_navigations_leaves_no_process(
    tmp_path: Path, hanging_site: str
) -> None:
    config = tmp_path / "hang.yaml"
    config.write_text(
        "history: {enabled: false}\njobs:\n"
        + "".join(
            f"  - {{name: hang{i}, plugin: page-title, timeout: 30s, "
            f"options: {{url: '{hanging_site}/hang'}}}}\n"
            for i in range(10)
        )
    )
    report = tmp_path / "report.json"
    env = {"SUBREAPER_REPORT": str(report)}
    with RunnerProcess("serve", str(config), env=env, prefix=SUBREAPER) as runner:
        # Both page slots are navigating, eight runs wait for one.
        wait_until(lambda: _Site.hanging >= 2, timeout=30, what="two navigations")
        assert runner.stop(timeout=15) == 0
    _report(report)


#: The never-yielding page's job timeout. Its evidence gets a quarter of it:
#: at 4 s (1 s for a screenshot) a run under a CPU burner and a loaded
#: machine (load average 10 on 2 cores) ended with no evidence, on main too.
BUSY_TIMEOUT_S = 8.0


def test_killed_browser_and_a_page_that_never_yields_leave_no_process(
    tmp_path: Path, hanging_site: str
) -> None:
    config = tmp_path / "busy.yaml"
    config.write_text(
        "history: {enabled: false}\n"
        "jobs:\n"
        "  - name: ok\n"
        "    plugin: page-title\n"
        "    interval: 300ms\n"
        f"    options: {{url: '{hanging_site}/ok', expect_title: Local page}}\n"
        "  - name: busy\n"
        "    plugin: page-title\n"
        "    interval: 300ms\n"
        f"    timeout: {BUSY_TIMEOUT_S:g}s\n"
        f"    options: {{url: '{hanging_site}/busy'}}\n"
    )
    report = tmp_path / "report.json"
    env = {"SUBREAPER_REPORT": str(report)}
    with RunnerProcess("serve", str(config), env=env, prefix=SUBREAPER) as runner:
        runner.wait_for(timeout=30, event="job.finished", job="ok", status="ok")
        # A script that never yields: a timeout, within the job's timeout, with
        # a screenshot or a reason there is none; and the other job runs on.
        # (The second run: the first one's clock also ran while the browser
        # started, which can leave it no time of its own on a loaded machine.)
        busy = runner.wait_for(timeout=60, event="job.finished", job="busy", count=2)[-1]
        assert busy["status"] == "timeout", busy
        assert busy["duration_ms"] < BUSY_TIMEOUT_S * 1000 + 500, busy
        assert "screenshot" in busy or "screenshot_error" in busy, busy.get("message")
        wrapper = runner.proc.pid
        # runner keeps one browser at a time (the old one closed before a
        # relaunch): one, once the processes of the runs so far have settled.
        browsers = wait_for_count(
            lambda: chromium_browsers(descendants(wrapper)), 1, timeout=10, what="browser"
        )
        os.kill(browsers.pop(), signal.SIGKILL)
        before = len(runner.find(event="job.finished", job="ok", status="ok"))
        runner.wait_for(timeout=30, event="job.finished", job="ok", status="ok", count=before + 2)
        assert runner.stop(timeout=15) == 0
    _report(report)


@needs_namespace
@pytest.mark.parametrize(
    "init", [pytest.param(True, id="reaps"), pytest.param(False, id="RUNNER_NO_INIT-leaks")]
)
def test_pid1_leaves_no_zombie_after_a_browser_relaunch(
    tmp_path: Path, site: str, init: bool
) -> None:
    env = {} if init else {"RUNNER_NO_INIT": "1"}
    with RunnerProcess("serve", str(_config(tmp_path, site)), env=env, prefix=UNSHARE) as runner:
        runner.wait_for(timeout=30, event="job.finished", job="page", status="ok")
        pid1 = _init_pid(runner.proc.pid)
        browsers = wait_for_count(
            lambda: chromium_browsers(descendants(pid1)), 1, timeout=10, what="browser"
        )
        # Crash handlers included: they go with their browser too.
        launched = {pid for pid, p in processes(descendants(pid1)).items() if "chrom" in p.cmdline}
        for pid in browsers:
            os.kill(pid, signal.SIGKILL)
        # The next runs find the browser gone and launch another one.
        before = len(runner.find(event="job.finished", status="ok"))
        runner.wait_for(timeout=30, event="job.finished", status="ok", count=before + 2)
        assert chromium_browsers(descendants(pid1)) - launched, "no new browser was launched"

        if init:
            # Every process of the killed browser is gone from /proc: not
            # even a zombie is left of it.
            wait_until(
                lambda: not any(Path(f"/proc/{pid}").exists() for pid in launched),
                timeout=10,
                what=f"the killed browser's processes to be reaped: {launched}",
            )
            # Nor of anything else adopted by PID 1 (other zombies, whose
            # parent is a live Chromium, are that parent's to wait for).
            wait_until(lambda: not _orphaned_zombies(pid1), timeout=5, what="no zombie of PID 1")
        else:
            # The control: without the init, the daemon as PID 1 keeps them.
            wait_until(lambda: _zombies(launched), timeout=10, what="zombies of the killed browser")
        os.kill(pid1, signal.SIGTERM)
        # unshare exits with its child's code, which is the daemon's own.
        assert runner.proc.wait(timeout=15) == 0
        assert runner.find(event="daemon.stopped")


@needs_namespace
def test_ctrl_c_on_a_terminal_reaches_the_daemon_once(tmp_path: Path) -> None:
    # Ctrl-C signals the terminal's foreground process group. Were PID 1 in the
    # daemon's group, the daemon would get SIGINT twice (once forwarded) and
    # skip its shutdown's grace period (daemon.force_stop).
    config = tmp_path / "nap.yaml"
    config.write_text(
        "history: {enabled: false}\n"
        "jobs:\n"
        "  - {name: nap, plugin: sleep, interval: 200ms, options: {seconds: 0}}\n"
    )
    command = [*UNSHARE, sys.executable, "-m", "runner", "serve", str(config)]
    pid, terminal = pty.fork()
    if pid == 0:  # the child: exec at once, nothing else
        os.execvp(command[0], [*command, "--log-format", "json"])
    output = b""
    interrupted = False
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if select.select([terminal], [], [], 0.1)[0]:
                try:
                    data = os.read(terminal, 65536)
                except OSError:  # EIO: the terminal's last process is gone
                    break
                if not data:
                    break
                output += data
            if not interrupted and b'"job.finished"' in output:
                os.write(terminal, b"\x03")  # what Ctrl-C types
                interrupted = True
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(terminal)
    assert interrupted, output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0
    events = [line for line in output.decode(errors="replace").splitlines() if '"event"' in line]
    assert any('"daemon.stopping"' in line and '"SIGINT"' in line for line in events), events
    assert not any("force_stop" in line for line in events), events

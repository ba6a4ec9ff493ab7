"""No process outlives runner, and as PID 1 runner reaps the orphans Chromium leaves.

The counting process makes itself a child subreaper, so orphans come back to it
rather than to init. The PID namespace is real (``unshare --pid --fork
--mount-proc``, which needs root); the browser is really killed from outside
and relaunched by the next run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import RunnerProcess, descendants, local_http_server, wait_until

needs_namespace = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="a PID namespace needs root and unshare(1)",
)

#: Run in a subprocess of its own, so the test session itself never becomes a
#: subreaper: runs ``runner ARGS``, then reaps what comes back to it and prints
#: the exit code and the command lines of children still alive after 3 s.
_SUBREAPER = """
import ctypes, json, os, subprocess, sys, time
PR_SET_CHILD_SUBREAPER = 36
assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
code = subprocess.run([sys.executable, "-m", "runner", *sys.argv[1:]],
                      stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL).returncode
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
print(json.dumps({"code": code, "adopted": adopted, "live": [cmdline(p) for p in live]}))
"""

UNSHARE = ("unshare", "--pid", "--fork", "--mount-proc", "--kill-child")


@pytest.fixture
def site() -> Iterator[str]:
    with local_http_server() as url:
        yield url


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _init_pid(unshare_pid: int) -> int:
    """The host pid of the namespace's PID 1 (unshare's only child)."""
    children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def _chromium(pids: set[int]) -> set[int]:
    return {pid for pid in pids if "chrom" in _cmdline(pid) and _state(pid) != "Z"}


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
    proc = subprocess.run(
        [sys.executable, "-c", _SUBREAPER, "run", str(config)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout)
    assert outcome["code"] == 1  # the failing job
    assert outcome["live"] == []
    # The subreaper did get Chromium's orphans (so the count above saw them).
    assert outcome["adopted"] > 0


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
        browsers = {
            pid
            for pid in _chromium(descendants(pid1))
            if "--type=" not in _cmdline(pid) and "crashpad" not in _cmdline(pid)
        }
        assert len(browsers) == 1, browsers
        launched = _chromium(descendants(pid1))
        for pid in browsers:
            os.kill(pid, signal.SIGKILL)
        # The next runs find the browser gone and launch another one.
        before = len(runner.find(event="job.finished", status="ok"))
        runner.wait_for(timeout=30, event="job.finished", status="ok", count=before + 2)
        assert _chromium(descendants(pid1)) - launched, "no new browser was launched"

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
